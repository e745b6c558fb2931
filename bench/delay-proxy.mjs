// A TCP proxy on loopback that delays every chunk by a fixed time in each direction, standing in
// for network latency (this kernel has no netem qdisc). Part of the bench, not of the product.
import { createServer, connect } from 'node:net';

/** Start a proxy to `target` ("host:port") adding `delayMs` each way. Returns its address and a stop(). */
export async function startDelayProxy(target, delayMs) {
  const [host, port] = target.split(':');
  const sockets = new Set();
  const delayed = (from, to) => {
    // Chunks keep their order: each is sent delayMs after it arrived.
    from.on('data', (chunk) => setTimeout(() => to.writable && to.write(chunk), delayMs));
    from.on('end', () => setTimeout(() => to.end(), delayMs));
    from.on('error', () => to.destroy());
  };
  const server = createServer((client) => {
    const upstream = connect(Number(port), host);
    sockets.add(client);
    sockets.add(upstream);
    delayed(client, upstream);
    delayed(upstream, client);
    const drop = () => {
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', drop);
    upstream.on('close', drop);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    addr: `127.0.0.1:${server.address().port}`,
    stop: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
