// Import this before anything that loads the undici package (src/registry/http.ts does).
//
// undici 7, when it is loaded before Node's built-in fetch has been touched, installs its own
// Agent as the process-wide dispatcher, and Node 20's built-in fetch (undici 6 inside, which the
// push harness uses) then hands that Agent requests it refuses: every PUT with a Content-Length
// fails with "invalid content-length header". Touching a fetch global loads the built-in undici
// first, which installs its own Agent; undici 7 then leaves it alone.
void globalThis.Headers;
