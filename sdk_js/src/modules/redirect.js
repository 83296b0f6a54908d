// @ts-check
// Build entry of the redirect module: one statement registering it on the core's window.vitrina.
import { installRedirect } from "../redirect.js"

const vitrina = /** @type {any} */ (window).vitrina
vitrina && vitrina._module && vitrina._module("redirect", installRedirect)
