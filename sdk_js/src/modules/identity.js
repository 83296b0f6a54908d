// @ts-check
// Build entry of the identity module: one statement registering it on the core's window.vitrina.
import { installIdentity } from "../identity.js"

const vitrina = /** @type {any} */ (window).vitrina
vitrina && vitrina._module && vitrina._module("identity", installIdentity)
