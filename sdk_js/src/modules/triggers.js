// @ts-check
// Build entry of the triggers module: one statement registering it on the core's window.vitrina.
import { installTriggers } from "../triggers.js"

const vitrina = /** @type {any} */ (window).vitrina
vitrina && vitrina._module && vitrina._module("triggers", installTriggers)
