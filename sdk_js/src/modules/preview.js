// @ts-check
// Build entry of the preview module: one statement handing it to the core's window.vitrina (whose
// init fetched it for ?vitrina_preview and waits for it).
import { startPreview } from "../preview.js"

const vitrina = /** @type {any} */ (window).vitrina
vitrina && vitrina._module && vitrina._module("preview", startPreview)
