// @ts-check
// Build entry of the debug module: one statement registering it on the core's window.vitrina
// (after init: the core fetches it when the URL has vitrina_debug=1).
import { installDebug } from "../debug.js"

const vitrina = /** @type {any} */ (window).vitrina
vitrina && vitrina._module && vitrina._module("debug", installDebug)
