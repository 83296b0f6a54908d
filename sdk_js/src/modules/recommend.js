// @ts-check
// Build entry of the recommend module: one statement registering it on the core's window.vitrina.
import { installRecommend } from "../recommend.js"

const vitrina = /** @type {any} */ (window).vitrina
vitrina && vitrina._module && vitrina._module("recommend", installRecommend)
