// @ts-check
// Build entry of the adaptive module: one statement registering it on the core's window.vitrina.
import { installAdaptive } from "../allocation.js"

const vitrina = /** @type {any} */ (window).vitrina
vitrina && vitrina._module && vitrina._module("adaptive", installAdaptive)
