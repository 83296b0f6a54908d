// @ts-check
// Build entry of the attribution module: one statement registering it on the core's window.vitrina.
import { installAttribution } from "../attribution.js"

const vitrina = /** @type {any} */ (window).vitrina
vitrina && vitrina._module && vitrina._module("attribution", installAttribution)
