// Entry point: parses argv with commander and loads each command's module only when it runs,
// so `crossbuild --version` stays close to bare node start-up.
import { Command, CommanderError, InvalidArgumentError, Option, type Help } from 'commander';
import { describeError, UsageError } from '../errors.js';
import { inFlight } from '../util/inflight.js';
import { escapeControl } from '../util/text.js';
import { failed, printFailure, settle, wrapUnknown, type Outcome } from './failure.js';
import { VERSION } from '../version.js';

export const EXIT_CODES_HELP = `
Exit codes:
  0  success
  1  a build, verification, push or registry operation failed
  2  usage or configuration error (bad flag, bad platforms.json, bad reference)
  130, 143  interrupted by SIGINT, SIGTERM: containers removed, report written`;

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Repeatable flags whose values contain commas (secrets, ssh): one per flag, or one per line from the environment. */
function lines(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split('\n').map((v) => v.trim()).filter(Boolean)];
}

/** A flag that takes one value: given twice is an error, not the last one silently kept. */
function once(flag: string): (value: string, previous: string | undefined) => string {
  return (value, previous) => {
    if (previous !== undefined && previous !== value) throw new InvalidArgumentError(`given twice (${previous}, ${value}); ${flag} takes one value here`);
    return value;
  };
}

function commaList(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(/[\n,]/).map((v) => v.trim()).filter(Boolean)];
}

function registryOptions(cmd: Command): Command {
  return cmd
    .option('--insecure', 'skip TLS verification for registries (and allow plain HTTP fallback)')
    .option('--plain-http', 'talk plain HTTP to registries')
    .option('--docker-cfg <path>', 'Docker config folder or config.json with registry credentials')
    .option('--username <user>', "username for the target image's registry only; other registries use the Docker config (password from --password-stdin)")
    .option('--password-stdin', 'read the registry password from standard input')
    .addOption(new Option('--debug', 'log every registry request (when it left, method, path, status, time taken) to stderr').env('CROSSBUILD_DEBUG'))
    .addOption(new Option('--registry-timeout <seconds>', 'deadline for a registry connection, its response headers, and each pause in a body (default 30; connect at most 10)').env('CROSSBUILD_REGISTRY_TIMEOUT'));
}

/**
 * One option of the help, wrapped to the terminal (80 columns off a terminal): descriptions start
 * at one column whatever the longest option is, and a long option puts its description below it.
 */
function helpItem(term: string, termWidth: number, description: string, helper: Help): string {
  if (!description) return `  ${term}`;
  const col = Math.min(termWidth, 30);
  const indent = col + 4;
  const body = helper.boxWrap(description, (helper.helpWidth ?? 80) - indent).replace(/\n/g, `\n${' '.repeat(indent)}`);
  return term.length > col ? `  ${term}\n${' '.repeat(indent)}${body}` : `  ${term.padEnd(col)}  ${body}`;
}

/** What the command that ran returned: its exit code. */
let commandExit = 0;

/**
 * Every command returns one Outcome (or throws); this is the one place it is printed and turned
 * into the exit code. An error that is not one of ours (a bug, a library's surprise) is named by
 * the command, exit 1.
 */
function exits<A extends unknown[]>(fn: (...args: A) => Promise<Outcome>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    let outcome: Outcome;
    try {
      outcome = await fn(...args);
    } catch (e) {
      outcome = failed(wrapUnknown(e, commandPath(args[args.length - 1])));
    }
    commandExit = settle(outcome);
  };
}

function commandPath(cmd: unknown): string {
  const names: string[] = [];
  for (let c = cmd instanceof Command ? cmd : null; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('crossbuild')
    .description('Multi-architecture container images from one x86_64 host')
    .version(VERSION, '-V, --version')
    // One line and commander's suggestion, not the whole help, after a mistyped flag.
    .showHelpAfterError('(crossbuild COMMAND --help lists the options)')
    .addHelpText('after', EXIT_CODES_HELP)
    .configureHelp({ formatItem: helpItem })
    .exitOverride()
    // commander echoes a bad value back: escape control characters so input cannot drive the terminal.
    .configureOutput({ outputError: (str, write) => write(str.split('\n').map(escapeControl).join('\n')) });

  // Flags win over CROSSBUILD_* variables, which win over platforms.json.
  const envOpt = (flags: string, description: string, env: string) => new Option(flags, description).env(env);
  const run = program
    .command('run')
    .description('build every platform, verify each is the right architecture, push, and write the manifest list')
    .argument('[context]', 'build context folder, as docker buildx build takes it (default: the config\'s, or .)')
    .addOption(envOpt('-c, --config <file>', 'build matrix file (default: ./platforms.json if there is one, else the flags alone: -t and --platform)', 'CROSSBUILD_CONFIG'))
    .option('-f, --file <Dockerfile>', 'the Dockerfile of every platform (default: CONTEXT/Dockerfile, or the config\'s)')
    .addOption(envOpt('--image <repo>', 'image repository (overrides the config)', 'CROSSBUILD_IMAGE'))
    .addOption(envOpt('-t, --tag <tag>', 'tag of the manifest list (overrides the config); repeatable: every tag gets the list, the first names the suffixed tags', 'CROSSBUILD_TAG').argParser(collect))
    .addOption(envOpt('--platform <platform>', 'the platforms to build (repeatable or comma-separated): a subset of platforms.json; one it lacks is built with its top-level settings and a derived suffix', 'CROSSBUILD_PLATFORMS').argParser(collect))
    .addOption(envOpt('--type <type>', 'manifest list type (default: oci when the images carry attestations, else docker)', 'CROSSBUILD_TYPE').choices(['docker', 'oci']))
    .addOption(envOpt('--no-push', 'build and verify only; push nothing and write no list', 'CROSSBUILD_NO_PUSH'))
    .option('--push', 'push the platforms and the list (what run does; accepted as buildx takes it)')
    .addOption(envOpt('--no-list', 'build, verify and push the platforms but write no list (a leg for `crossbuild merge`)', 'CROSSBUILD_NO_LIST'))
    .addOption(envOpt('--concurrency <n>', 'platforms built at once (default: min(platforms, 2 × cores))', 'CROSSBUILD_CONCURRENCY'))
    .addOption(envOpt('--build-arg <k=v>', 'build argument (repeatable)', 'CROSSBUILD_BUILD_ARGS').argParser((v: string, prev: string[] = []) => [...prev, ...v.split(/\n|,(?=[A-Za-z_][A-Za-z0-9_]*=)/).filter(Boolean)]))
    .option('--label <k=v>', 'image label (repeatable)', collect)
    .option('--target <stage>', 'Dockerfile stage to build (every platform)')
    .addOption(envOpt('--network <mode>', "network of RUN steps: default (the engine's, as docker build), none or host", 'CROSSBUILD_NETWORK').choices(['default', 'none', 'host']))
    .addOption(envOpt('--secret <id=ID,src=FILE|env=VAR>', 'build secret for RUN --mount=type=secret (repeatable; BuildKit builders)', 'CROSSBUILD_SECRETS').argParser(lines))
    .addOption(envOpt('--ssh <default|ID=PATH>', 'SSH agent socket or keys for RUN --mount=type=ssh (repeatable; BuildKit builders)', 'CROSSBUILD_SSH').argParser(lines))
    .addOption(envOpt('--add-host <host:ip>', 'extra /etc/hosts entry for RUN steps (repeatable)', 'CROSSBUILD_ADD_HOSTS').argParser(commaList))
    .option('--build-context <name=path|docker-image://ref>', 'extra named build context (repeatable; buildx)', collect)
    .addOption(envOpt('--shm-size <size>', 'size of /dev/shm for RUN steps, e.g. 256m', 'CROSSBUILD_SHM_SIZE'))
    .option('--ulimit <type=soft[:hard]>', 'ulimit for RUN steps, e.g. nofile=1024:2048 (repeatable)', collect)
    .addOption(envOpt('--provenance <value>', 'provenance attestation as buildx takes it: false, true, mode=min, mode=max (buildx ≥ 0.10)', 'CROSSBUILD_PROVENANCE'))
    .addOption(envOpt('--sbom <value>', 'SBOM attestation as buildx takes it: false, true, generator=IMAGE (buildx ≥ 0.10)', 'CROSSBUILD_SBOM'))
    .option('--attest <spec>', 'attestation as buildx takes it, e.g. type=provenance,mode=max (repeatable)', collect)
    .option('--annotation <[type:]k=v>', 'OCI annotation as buildx takes it (repeatable; buildx ≥ 0.12)', collect)
    .option('--allow <glob>', 'a path whose foreign architecture is legitimate, for the registry verification (repeatable)', collect)
    .option('--test <test>', 'a test every platform must pass before it is pushed: a command line (run with sh -c in the image) or a JSON test; replaces the file\'s (repeatable)', collect)
    .option('--no-test', 'skip the tests of platforms.json (the report says so)')
    .addOption(envOpt('--sign', "sign each platform's image and the list (cosign), each with crossbuild's proof as a signed attestation", 'CROSSBUILD_SIGN'))
    .addOption(envOpt('--key <key>', 'the cosign signing key: a key file, env://VAR or a KMS URI (COSIGN_PASSWORD for an encrypted one); absent: keyless', 'CROSSBUILD_SIGN_KEY'))
    .addOption(envOpt('--junit <file>', 'write the test results as JUnit XML (one testcase per test and platform)', 'CROSSBUILD_JUNIT'))
    .addOption(envOpt('--node <platform=node>', 'build this platform on another engine: a Docker context name or an engine URL (repeatable)', 'CROSSBUILD_NODES').argParser(commaList))
    .option('--no-cache', 'build without the layer cache')
    .addOption(envOpt('--cache <mode>', 'build cache through the registry, per platform: none or registry', 'CROSSBUILD_CACHE').choices(['none', 'registry']))
    .addOption(envOpt('--cache-ref <repo>', 'repository for separate cache images (default: the image\'s own, tags buildcache-<suffix>)', 'CROSSBUILD_CACHE_REF'))
    .option('--cache-from <spec>', 'buildx cache source, e.g. type=gha (repeatable; the platform suffix is added to scope/ref)', collect)
    .option('--cache-to <spec>', 'buildx cache destination, e.g. type=gha,mode=max (repeatable; buildx only)', collect)
    .addOption(envOpt('--timeout <seconds>', 'time limit for each verification container', 'CROSSBUILD_TIMEOUT').default('60'))
    .addOption(envOpt('--builder <builder>', 'which builder to use (default: detect)', 'CROSSBUILD_BUILDER').choices(['buildx', 'buildkit', 'classic']))
    .addOption(envOpt('--log-dir <dir>', 'where per-platform build logs go', 'CROSSBUILD_LOG_DIR'))
    .addOption(envOpt('--report <file>', 'write a JSON report', 'CROSSBUILD_REPORT'))
    .addOption(envOpt('--summary <file>', 'write a Markdown summary (e.g. $GITHUB_STEP_SUMMARY)', 'CROSSBUILD_SUMMARY'))
    .addOption(envOpt('--metadata-file <file>', "write buildx's metadata JSON (containerimage.digest, image.name, the descriptor; per platform too)", 'CROSSBUILD_METADATA_FILE'))
    .option('--iidfile <file>', "write the list's digest to a file")
    .addOption(new Option('--no-layer-cache', 'read every layer from the registry, not the facts kept by digest (also CROSSBUILD_LAYER_CACHE=off)'))
    .option('--dry-run', 'print the plan; build, push and register nothing')
    .addOption(envOpt('--progress <mode>', 'progress output as buildx names it: auto (a live view on a terminal, else plain lines), tty, plain, quiet, rawjson (one JSON event a line)', 'CROSSBUILD_PROGRESS').choices(['auto', 'tty', 'plain', 'quiet', 'rawjson']))
    .option('-q, --quiet', 'only failures and the result')
    .option('-v, --verbose', 'plain progress lines including build output')
    .option('--json', 'print the report as JSON on stdout (nothing else there)');
  registryOptions(run).addHelpText('after', EXIT_CODES_HELP).action(exits(async (context: string | undefined, opts) => (await import('./commands/run.js')).runCommand(opts, context)));

  program
    .command('init')
    .description('write a commented platforms.json from the flags given (the image, platforms, context and Dockerfile)')
    .argument('[context]', 'build context folder (default: .)')
    .option('-t, --tag <ref>', 'the image and the tag of its list, e.g. localhost:5000/app:1.0')
    .option('--image <repo>', 'image repository, e.g. localhost:5000/app (with -t TAG)')
    .option('--platform <platform>', 'platforms (repeatable or comma-separated; default: linux/amd64,linux/arm64,linux/arm/v7)', collect)
    .option('-f, --file <Dockerfile>', 'the Dockerfile (default: CONTEXT/Dockerfile)')
    .option('-c, --config <file>', 'where to write it', 'platforms.json')
    .option('--force', 'overwrite an existing file')
    .action(exits(async (context: string | undefined, opts) => (await import('./commands/init.js')).initCommand(opts, context)));

  registryOptions(
    program
      .command('merge')
      .description('join legs built elsewhere (run --no-list, a CI matrix, devices) into one list, once every leg is found and proven')
      .addOption(envOpt('-c, --config <file>', 'build matrix file: the image, tag and the platforms the list must have', 'CROSSBUILD_CONFIG').default('platforms.json'))
      .addOption(envOpt('--image <repo>', 'image repository (overrides the config)', 'CROSSBUILD_IMAGE'))
      .addOption(envOpt('--tag <tag>', 'tag of the manifest list (overrides the config)', 'CROSSBUILD_TAG').argParser(once('--tag')))
      .addOption(envOpt('--platform <platform>', 'only these platforms (repeatable or comma-separated)', 'CROSSBUILD_PLATFORMS').argParser(collect))
      .addOption(new Option('--type <type>', 'manifest list type (default: oci when the legs carry attestations, else docker)').choices(['docker', 'oci']))
      .option('--runtime', 'also run uname -m in each leg (needs Docker and QEMU handlers)')
      .addOption(new Option('--no-layer-cache', 'read every layer from the registry, not the facts kept by digest (also CROSSBUILD_LAYER_CACHE=off)'))
      .option('--timeout <seconds>', 'time limit for each uname container', '60')
      .option('--from-report <file...>', "the legs' `run --report` files: their digests instead of the suffixed tags")
      .option('--from-digests <dir>', "a folder of files named by digest, as in Docker's multi-runner recipe")
      .option('--sign', "sign each leg's image and the list (cosign), each with crossbuild's proof attached")
      .option('--key <key>', 'the cosign signing key: a key file, env://VAR or a KMS URI; absent: keyless')
      .option('--report <file>', 'write the JSON report to a file')
      .option('--summary <file>', 'write a Markdown summary (e.g. $GITHUB_STEP_SUMMARY)')
      .option('--json', 'machine-readable report on stdout'),
  )
    .addHelpText('after', EXIT_CODES_HELP)
    .action(exits(async (opts) => (await import('./commands/merge.js')).mergeCommand(opts)));

  registryOptions(
    program
      .command('verify')
      .description('prove every platform of a tag is what it claims: coverage, config, every binary, uname')
      .argument('[ref]', 'a manifest list or a single image (REPO:TAG or REPO@sha256:…); or give --metadata')
      .option('--metadata <file>', "buildx's --metadata-file JSON (or build-push-action's metadata output): image.name and containerimage.digest")
      .option('--allow <glob>', 'a path whose foreign architecture is legitimate, e.g. /usr/share/qemu/** (repeatable)', collect)
      .option('--platform <list>', 'platforms the tag must cover (repeatable or comma-separated)', collect)
      .addOption(new Option('--platforms <list>', 'the same as --platform').argParser(collect).hideHelp())
      .option('-c, --config <file>', 'take the target platforms (and uname overrides) from platforms.json')
      .option('--static', 'no containers: config and binaries only (needs no Docker engine)')
      .addOption(new Option('--no-layer-cache', 'read every layer from the registry, not the facts kept by digest (also CROSSBUILD_LAYER_CACHE=off)'))
      .option('--test <test>', 'a test each platform must pass, run on the published image by digest: a command line or a JSON test (repeatable; with --config, replaces its tests)', collect)
      .option('--junit <file>', 'write the test results as JUnit XML')
      .option('--key <key>', "a cosign public key: the list and every child must be signed by it")
      .option('--require-attestation', "with --key: every child must carry crossbuild's proof attestation for its own digest and platform")
      .option('--timeout <seconds>', 'time limit for each uname container', '60')
      .option('--report <file>', 'write the JSON report to a file')
      .option('--summary <file>', 'write a Markdown summary (e.g. $GITHUB_STEP_SUMMARY)')
      .option('--json', 'machine-readable report on stdout'),
  )
    .addHelpText('after', EXIT_CODES_HELP)
    .action(exits(async (ref: string | undefined, opts) => (await import('./commands/verify.js')).verifyCommand(ref, opts)));

  registryOptions(
    program
      .command('doctor')
      .description('check this host: binfmt_misc, handlers, QEMU, Docker engine and builder, registry, disk')
      .option('-c, --config <file>', 'platforms.json whose platforms and registry to check', 'platforms.json')
      .option('--platform <platform>', 'platforms to check (repeatable or comma-separated)', collect)
      .option('--json', 'machine-readable output'),
  ).action(exits(async (opts) => (await import('./commands/doctor.js')).doctorCommand(opts)));

  const binfmt = program.command('binfmt').description('QEMU binfmt_misc handlers for emulated platforms');
  binfmt
    .command('status')
    .description('list binfmt_misc handlers and which platforms can run')
    .option('--platform <platform>', 'platforms to check (repeatable or comma-separated)', collect)
    .option('--json', 'machine-readable output')
    .action(exits(async (opts) => (await import('./commands/binfmt.js')).binfmtStatus(opts)));
  binfmt
    .command('install')
    .description('register qemu-user-static handlers (F flag) for platforms that lack a working one')
    .option('--platform <platform>', 'platforms (repeatable or comma-separated; default: all QEMU knows here)', collect)
    .action(exits(async (opts) => (await import('./commands/binfmt.js')).binfmtInstall(opts)));
  binfmt
    .command('uninstall')
    .description('remove the qemu handlers for these platforms')
    .requiredOption('--platform <platform>', 'platforms (repeatable or comma-separated)', collect)
    .action(exits(async (opts) => (await import('./commands/binfmt.js')).binfmtUninstall(opts)));

  const manifest = program.command('manifest').description('manifest lists: push (manifest-tool compatible) and inspect');
  const push = manifest.command('push').description('write a manifest list');
  const listType = () => new Option('--type <type>', 'list type').choices(['docker', 'oci']).default('docker');
  registryOptions(
    push
      .command('from-spec')
      .description("from manifest-tool's YAML spec (image, tags, annotations, manifests[].image/platform)")
      .argument('<file>', 'the YAML spec')
      .addOption(listType())
      .option('--ignore-missing', 'skip children that do not exist, with a warning')
      .option('--json', 'machine-readable output'),
  ).action(exits(async (file: string, opts) => (await import('./commands/manifest.js')).pushFromSpec(file, opts)));
  registryOptions(
    push
      .command('from-args')
      .description('from a platform list and a reference template with OS, ARCH, VARIANT, ARCHVARIANT placeholders')
      .option('--platform <list>', 'platforms, e.g. linux/amd64,linux/arm/v7 (repeatable or comma-separated)', collect)
      .addOption(new Option('--platforms <list>', 'the same as --platform').argParser(collect).hideHelp())
      .requiredOption('--template <ref>', 'e.g. reg/app:1.0-ARCHVARIANT')
      .requiredOption('--target <ref>', 'where the list goes, e.g. reg/app:1.0')
      .option('--tags <list>', 'more tags for the same list, comma-separated')
      .option('--annotations <k=v>', 'index annotations (OCI only; repeatable or comma-separated)', collect)
      .addOption(listType())
      .option('--ignore-missing', 'skip children that do not exist, with a warning')
      .option('--json', 'machine-readable output'),
  ).action(exits(async (opts) => (await import('./commands/manifest.js')).pushFromArgs(opts)));
  registryOptions(
    manifest
      .command('inspect')
      .description('show a list (platform, digest, size, media type, attestation) or a single manifest')
      .argument('<ref>', 'image reference')
      .option('--raw', 'print the exact bytes the registry serves')
      .option('--json', 'machine-readable output')
      .addOption(new Option('--type <type>', 'accepted for symmetry; inspect shows whatever is there').choices(['docker', 'oci'])),
  ).action(exits(async (ref: string, opts) => (await import('./commands/manifest.js')).inspect(ref, opts)));

  const seed = program
    .command('seed', { hidden: true })
    .description('push images made from root filesystem folders, joined in a manifest list (for base images)')
    .requiredOption('--image <ref>', 'target reference of the list, e.g. localhost:5000/busybox:latest')
    .requiredOption('--rootfs <platform=dir>', 'a platform and its root filesystem: a folder or a tar file (repeatable)', collect)
    .addOption(new Option('--type <type>', 'manifest list type').choices(['docker', 'oci']).default('docker'))
    .option('--cmd <cmd>', 'default command', 'sh');
  registryOptions(seed).action(exits(async (opts) => (await import('./commands/seed.js')).seedCommand(opts)));

  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  // A closed stdout or stderr (`crossbuild run … | head`) is not a failure of the build: the run
  // goes on, cleans up and exits with its real code.
  for (const s of [process.stdout, process.stderr]) {
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e;
    });
  }
  const program = buildProgram();
  try {
    commandExit = 0;
    await program.parseAsync([...argv], { from: 'user' });
    return commandExit;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version exit 0; every other commander complaint is a usage error.
      return err.exitCode === 0 ? 0 : 2;
    }
    return printFailure(err);
  }
}

/**
 * The last resort: a rejection nothing waits for, or an end with main() unsettled (a stream that
 * never ended), is printed with what was in flight and exits 1 — never a silent exit.
 */
export function installLastResort(isSettled: () => boolean): void {
  const inflight = () => {
    const ops = inFlight();
    return ops.length ? `\n  in flight: ${ops.map(escapeControl).join('; ')}` : '';
  };
  process.on('unhandledRejection', (e) => {
    process.stderr.write(`crossbuild: an operation failed with nothing waiting for it: ${describeError(e)}${inflight()}\n`);
    process.exit(1);
  });
  process.on('exit', () => {
    if (isSettled()) return;
    process.stderr.write(`crossbuild: stopped with work unfinished (a connection or stream ended without an answer)${inflight()}\n`);
    process.exitCode = 1;
  });
}

export { UsageError };
