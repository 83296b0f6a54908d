// @ts-check
// Build entry of the predict module: one statement registering it on the core's window.vitrina.
import { installPredict } from "../predict.js"

const vitrina = /** @type {any} */ (window).vitrina
vitrina && vitrina._module && vitrina._module("predict", installPredict)
