// @ts-check
// Build entry of the goals module: one statement registering it on the core's window.vitrina.
import { installGoals } from "../goals.js"

const vitrina = /** @type {any} */ (window).vitrina
vitrina && vitrina._module && vitrina._module("goals", installGoals)
