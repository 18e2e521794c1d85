/**
 * Deno Deploy in miniature, preloaded before `main.ts` (`deno run --preload`): the platform owns
 * the one listener (here: 127.0.0.1, a free port) and refuses any other listener, loopback
 * included. A service that needs a listener of its own for outbound calls fails under it.
 *
 * @module
 */
const platformServe = Deno.serve;

Object.defineProperty(Deno, "listen", {
  value: () => {
    throw new Deno.errors.PermissionDenied("listening is not allowed on this platform");
  },
});
Object.defineProperty(Deno, "serve", {
  value: (options: Deno.ServeTcpOptions, handler: Deno.ServeHandler<Deno.NetAddr>) =>
    platformServe({ ...options, hostname: "127.0.0.1", port: 0 }, handler),
});
