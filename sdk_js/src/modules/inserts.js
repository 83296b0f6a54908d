// @ts-check
// Build entry of the inserts module: one statement registering it on the core's window.vitrina.
import { installInserts } from "../inserts.js"

const vitrina = /** @type {any} */ (window).vitrina
vitrina && vitrina._module && vitrina._module("inserts", installInserts)
