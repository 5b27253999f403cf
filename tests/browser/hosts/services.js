// The part of @jupyterlab/services the live page uses: a kernel connection over a WebSocket, in
// the role of VS Code's proxy kernel (which relays the same messages through its extension).
// Bundled by the test with esbuild into services.js beside the page.
export { KernelManager, ServerConnection } from "@jupyterlab/services";
