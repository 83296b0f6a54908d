// @ts-check
// What no action may do, checked where it is applied, so that no bundle (an older one, one
// published before a validation rule existed) can run script in a shopper's page: the server
// validates and sanitises too (server/configs/validation.py); this is the second lock.

// Elements that run, load or restyle code and content, and SVG animations (which can set
// another element's href): never a target.
const REFUSED_ELEMENTS = /^(?:script|style|iframe|frame|frameset|object|embed|applet|base|meta|link|set|animate|animatemotion|animatetransform)$/
// Attributes holding one URL, or a list of them (srcset, ping), that a browser may follow.
const URL_ATTRIBUTES = /^(?:href|src|action|formaction|xlink:href|poster|data|srcset|imagesrcset|background|cite|longdesc|ping)$/
// Script entry points: event handlers, a document of its own, inline style (the style action
// goes through the CSSOM instead).
const REFUSED_ATTRIBUTES = /^(?:on|srcdoc$|style$)/
const ALLOWED_SCHEMES = /^(?:https?|mailto|tel):$/
// What the URL parser reads as http(s) or relative without parsing it: an absolute http(s)
// URL as written, or one starting with "/", "?" or "#" (no scheme can start there).
const PLAINLY_SAFE = /^(?:https?:\/\/|[/?#])/

/**
 * Whether no action may touch this element.
 * @param {Element} element
 */
export const refusedTarget = (element) => REFUSED_ELEMENTS.test(element.localName.toLowerCase())

/**
 * A URL as the browser will read it (the WHATWG parser: tabs and newlines removed, leading
 * and trailing C0 controls and spaces stripped), relative to `base`: http(s), mailto and tel
 * only. A relative URL takes the page's own scheme.
 * @param {string} url
 * @param {string} base
 */
export function safeUrl(url, base) {
  try {
    return PLAINLY_SAFE.test(url) || ALLOWED_SCHEMES.test(new URL(url, base).protocol)
  } catch (_) {
    return false // the browser would not follow it either; refusing costs nothing
  }
}

/**
 * Whether `attr` may set this attribute to this value (null removes it, which is always fine
 * for an attribute it may set).
 * @param {string} name
 * @param {string | null} value
 * @param {string} base the page's base URL
 */
export function safeAttribute(name, value, base) {
  const lower = name.toLowerCase()
  if (REFUSED_ATTRIBUTES.test(lower)) return false
  if (value == null || !URL_ATTRIBUTES.test(lower)) return true
  // srcset and ping hold several URLs: "a.jpg 1x, b.jpg 2x", "https://a https://b".
  const urls = /srcset$/.test(lower)
    ? value.split(",").map((candidate) => candidate.trim().split(/\s+/)[0])
    : lower == "ping"
      ? value.split(/\s+/)
      : [value]
  return urls.every((url) => safeUrl(url, base))
}
