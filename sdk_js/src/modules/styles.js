// @ts-check
// Build entry of the styles module: one statement registering it on the core's window.vitrina.
import { installStyles } from "../styles.js"

const vitrina = /** @type {any} */ (window).vitrina
vitrina && vitrina._module && vitrina._module("styles", installStyles)
