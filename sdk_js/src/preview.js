// @ts-check
// The preview module (dist/modules/preview.min.js): a workspace's preview link,
// ?vitrina_preview=<token> (QA). The core fetches it from /sdk/modules/preview.min.js instead of
// starting; this fetches the previewed bundle (a draft, or a version) and its forced variations
// from preview.json (never cached), then starts the tag with them, sending nothing. A refused
// token (the answer has no bundle) starts it with the live bundle, forcing nothing. The page may
// show its original a moment first: this is QA, and the byte budget goes to visitors.

/** @typedef {import("./types.js").InitOptions} InitOptions */

/** @param {InitOptions} options init's, with the endpoint */
export const startPreview = (options) => {
  const token = new URLSearchParams(location.search).get("vitrina_preview") || ""
  /** @param {any} [body] */
  const start = (body) =>
    /** @type {any} */ (window).vitrina.init({ ...options, bundle: body?.bundle || options.bundle, preview: (body?.bundle && body.force) || {} })
  fetch(options.endpoint + "/preview.json?token=" + encodeURIComponent(token))
    .then((response) => response.json())
    .then(start, start)
}
