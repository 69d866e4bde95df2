// Inside a component: the host functions of hookhost:plugin@0.2.0, which componentize-js binds
// to the world's `host` import. The build selects this file with the `hookhost-component`
// condition; natively, `host.native.js` stands in.
export { log, kvGet, kvSet, nowMs, httpFetch } from "hookhost:plugin/host@0.2.0";
