// @ts-check
// Build entry of the commerce module: one statement registering it on the core's window.vitrina.
import { installCommerce } from "../commerce.js"

const vitrina = /** @type {any} */ (window).vitrina
vitrina && vitrina._module && vitrina._module("commerce", installCommerce)
