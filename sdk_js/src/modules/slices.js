// @ts-check
// Build entry of the slices module: one statement registering it on the core's window.vitrina.
import { installSlices } from "../slices.js"

const vitrina = /** @type {any} */ (window).vitrina
vitrina && vitrina._module && vitrina._module("slices", installSlices)
