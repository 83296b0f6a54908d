// @ts-check
// Build entry of the context module: one statement registering it on the core's window.vitrina.
import { installContext } from "../context.js"

const vitrina = /** @type {any} */ (window).vitrina
vitrina && vitrina._module && vitrina._module("context", installContext)
