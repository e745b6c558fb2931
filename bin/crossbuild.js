#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8';
import * as module from 'node:module';

// undici parses HTTP with a WebAssembly llhttp; V8's background tier-up of it holds the process
// open ~100 ms after the work is done. A short-lived CLI is better served by the baseline tier.
setFlagsFromString('--liftoff-only');
// Node ≥ 22.1 can cache compiled code between runs; older versions lack the call.
module.enableCompileCache?.();

const { main, installLastResort } = await import('../dist/cli/main.js');
let settled = false;
installLastResort(() => settled);
process.exitCode = await main(process.argv.slice(2));
settled = true;
