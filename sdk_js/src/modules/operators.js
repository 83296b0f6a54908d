// @ts-check
// Build entry of the operators module: one statement registering it on the core's window.vitrina.
import { rareOperators } from "../operators.js"

const vitrina = /** @type {any} */ (window).vitrina
vitrina && vitrina._module && vitrina._module("operators", (/** @type {any} */ runtime) => (runtime.addOperators(rareOperators), {}))
