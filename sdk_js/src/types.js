// @ts-check
// The shapes the SDK reads and keeps, for `tsc -p sdk_js` (JSDoc only: nothing here runs).
// docs/DESIGN.md "Compiled bundle" and "Browser storage" describe them in prose.

/**
 * A condition: MongoDB-style, attribute paths as keys (docs/DESIGN.md "Conditions").
 * @typedef {{[path: string]: any}} Condition
 */

/**
 * One action of a variation (docs/reference/config.md "Actions"); every field but `selector` optional.
 * @typedef {Object} Action
 * @property {string} [selector]
 * @property {string} [text]
 * @property {string} [html]
 * @property {{[name: string]: string | number | boolean | null}} [attr]
 * @property {string | string[]} [addClass]
 * @property {string | string[]} [removeClass]
 * @property {string | {[property: string]: string}} [style]
 * @property {boolean} [hide]
 * @property {boolean} [remove]
 * @property {string} [insertBefore]
 * @property {string} [insertAfter]
 * @property {string} [append]
 * @property {string} [css]
 * @property {string} [redirect]
 * @property {Recommend} [recommend] the recommend module's
 * @property {{by: string}} [reorder] the recommend module's
 * @property {(element: Element) => () => void} [apply] what the recommend module's rewritten action does to each element, once; returns its undo
 */

/**
 * A recommend action (docs/reference/recommendations.md); the compiler fills n and template.
 * @typedef {Object} Recommend
 * @property {string} strategy
 * @property {"cart" | "page" | "viewed" | string[]} items
 * @property {number} n
 * @property {string} template
 * @property {string} [title]
 * @property {string} [add]
 * @property {string} [category]
 * @property {number} [min_price]
 * @property {number} [max_price]
 */

/**
 * @typedef {Object} Variation
 * @property {string} key
 * @property {number} [weight]
 * @property {Action[]} [actions]
 */

/**
 * A behavioural trigger: exactly one kind (docs/DESIGN.md "Events, goals, triggers").
 * @typedef {Object} Trigger
 * @property {number} [scroll] deepest scroll, in % of the scrollable height
 * @property {number} [time_on_page] seconds
 * @property {number} [idle] seconds without input
 * @property {boolean} [exit_intent]
 * @property {string} [event] a `vitrina.track` name
 */

/**
 * A compiled campaign: the compiler fills every optional field (null when unused).
 * @typedef {Object} Campaign
 * @property {string} key
 * @property {string} [type]
 * @property {string} [seed]
 * @property {string | null} [segment]
 * @property {Condition | null} [conditions]
 * @property {Condition | null} [pages]
 * @property {Trigger | null} [trigger]
 * @property {number} [priority]
 * @property {string | null} [group]
 * @property {{start?: string | null, end?: string | null}} [schedule]
 * @property {{per_visitor?: number | null, per_session?: number | null}} [cap]
 * @property {number} [traffic]
 * @property {"visitor" | "customer"} [bucket_by] the unit bucketed and counted (default visitor)
 * @property {{by?: string[], goal?: string, mode?: string}} [allocation] adaptive: slices by the first `by` entry that matches
 * @property {Variation[]} variations
 * @property {string[]} [goals]
 */

/**
 * A goal: exactly one of its three kinds.
 * @typedef {Object} Goal
 * @property {string} [event]
 * @property {string} [click] a selector
 * @property {Condition} [pageview]
 */

/**
 * @typedef {Object} BundleSettings
 * @property {number} [holdout]
 * @property {"implied" | "required"} [consent]
 * @property {number} [antiflicker_ms]
 * @property {string[]} [referral_exclusions] referring hosts that count as the shop's own (attribution module)
 * @property {boolean} [ecommerce]
 */

/**
 * The signed, compiled bundle (docs/DESIGN.md "Compiled bundle").
 * @typedef {Object} Bundle
 * @property {string} [site]
 * @property {number} [version]
 * @property {number} [hash] the bucketing scheme (hash.js HASH_VERSION)
 * @property {{[name: string]: Condition}} [segments]
 * @property {{[key: string]: Goal}} [goals]
 * @property {Campaign[]} campaigns
 * @property {string[]} [crm] the names under crm. that live campaigns read ("*": all); /identify answers only these
 * @property {BundleSettings} [settings]
 * @property {Revision} [revision] the served revision of this version (docs/DESIGN.md "Revisions")
 */

/**
 * A revision: named parts the server adds to a version without a new version.
 * @typedef {Object} Revision
 * @property {number} [revision]
 * @property {{[campaign: string]: {weights?: {[slice: string]: number[]}, since?: {[slice: string]: number}}}} [allocations]
 */

/**
 * What `decide` answers (docs/DESIGN.md "Decision").
 * @typedef {Object} Decision
 * @property {boolean} holdout
 * @property {{[campaign: string]: string}} variations
 * @property {{[campaign: string]: string}} reasons
 * @property {string[]} holdout_campaigns
 * @property {{[campaign: string]: [slice: string, revision: number | null]}} [slices] adaptive assignments: where they were made
 */

/**
 * Sticky assignments; `customer` names the customer key a customer-bucketed campaign's one was given to.
 * @typedef {{[campaign: string]: {seed: string, variation: string, customer?: string, made?: [string, number | null]}}} StickyAssignments (`made`: decide.py's, for an adaptive one)
 * @typedef {{[campaign: string]: {visitor: number, session: number}}} ExposureCounts
 */

/**
 * `decide`'s options; all optional.
 * @typedef {Object} DecideOptions
 * @property {number} [now] ms since the epoch
 * @property {{[campaign: string]: string}} [force]
 * @property {StickyAssignments} [sticky]
 * @property {ExposureCounts} [counts]
 * @property {string[]} [triggered]
 * @property {string | null} [customer] the identified customer's key (/identify): bucket_by "customer" campaigns hash it
 * @property {(message: string) => void} [log]
 * @property {Map<any, boolean>} [memo] conditions already evaluated on these attributes, and their results: what decides more than once on one attribute tree shares one (the tag's core and its context module)
 */

/**
 * The visit state, localStorage `vtr_v` (docs/DESIGN.md "Browser storage"). Its one-letter
 * keys are the stored format: returning visitors carry them, so they never change.
 * @typedef {Object} VisitState
 * @property {number} [n] session count
 * @property {number} [s] this session's start (ms)
 * @property {number} [l] the last page view (ms)
 * @property {number} [p] page views this session
 * @property {number} [t] page views in all sessions
 * @property {number | null} [d] days from the previous session's last page view (null on the first)
 * @property {string} [g] the session's landing path
 * @property {string[]} [r] the session's [source, medium]
 * @property {{[name: string]: string}} [u] the session's UTM values
 * @property {string[]} [h] recent paths, newest last
 * @property {string[]} [i] viewed product ids, newest first
 * @property {string[]} [c] viewed product categories, newest first
 * @property {{[name: string]: number}} [e] `vitrina.track` counts
 * @property {ExposureCounts} [x] exposures per campaign (caps)
 * @property {StickyAssignments} [k] sticky assignments
 * @property {string} [j] a campaign whose exposure the redirecting page already sent
 */

/**
 * The cart (docs/reference/js-api.md "The cart"): what the site set, or what GA4 events said.
 * @typedef {Object} Cart
 * @property {number} [value]
 * @property {number} [items]
 * @property {CartLine[]} [lines]
 */

/** @typedef {{id: string, quantity: number, price: number}} CartLine */

/**
 * Server-resolved context: `context.js`, `GET /v1/context`, `init({context})` or the session
 * cookie `vtr_ctx`. `device.type` is never taken from here (the browser classifies it).
 * @typedef {Object} ServerContext
 * @property {{country?: string | null, region?: string | null, city?: string | null,
 *   continent?: string | null, timezone?: string | null}} [geo]
 * @property {{os?: string, browser?: string}} [device]
 */

/**
 * What the visitor does on this page view (the triggers module keeps it: page.scroll, idle, exit_intent).
 * @typedef {Object} Behaviour
 * @property {number} start when this page view started (ms)
 * @property {number} lastInput the last user input (ms)
 * @property {number} scroll the deepest scroll so far, %
 * @property {boolean} exitIntent the pointer left through the top of the window
 */

/**
 * An event for `POST .../collect` (docs/DESIGN.md "Events").
 * @typedef {Object} TrackedEvent
 * @property {"exposure" | "conversion" | "item"} type
 * @property {string} [campaign]
 * @property {string | null} [variation]
 * @property {boolean} [holdout]
 * @property {boolean} [forced]
 * @property {string} [goal]
 * @property {number} [value]
 * @property {string} [order_id] a purchase's order
 * @property {string} [strategy] a recommendation conversion's
 * @property {string[]} [items] product ids (item events; recommendation conversions)
 * @property {"view" | "cart" | "purchase"} [action] an item event's
 * @property {number} [session] an item event's: the visitor's session number
 * @property {string} [id]
 * @property {number} [version]
 * @property {number} [ts]
 * @property {{[name: string]: number}} [features] the page view's feature vector (the predict module)
 */

/**
 * What the core lends a module (docs/DESIGN.md "Modules"), from init on.
 * @typedef {Object} ModuleRuntime
 * @property {InitOptions} options init's
 * @property {() => Bundle | null | undefined} bundle the published bundle (null without one, and once the page is leaving)
 * @property {string} endpoint absolute URL of /v1/sites/<site>, "" when unknown
 * @property {number} antiflickerUntil when the anti-flicker time ends (ms since the epoch)
 * @property {ReturnType<typeof import("./dom.js").createDom>} dom the DOM layer (hideFor, addStyle)
 * @property {(firstPaint?: boolean) => void} decide decide again and apply, as `vitrina.refresh()` does without a new page view; firstPaint: hide the chosen elements until applied
 * @property {() => Map<string, string> | undefined} held what a module holds back from the latest decision (see ModuleHooks.hold)
 * @property {() => any} attributes the attribute tree now
 * @property {(goal: string, value?: number, order_id?: any, fields?: Partial<TrackedEvent>) => void} convert the core's
 *   conversion event: its value, order id, and a module's fields (a recommendation's campaign, strategy, items)
 * @property {(event: TrackedEvent) => void} send queue an event for collect (id, version and ts added)
 * @property {(topic: string, text: string) => void} note a `[vitrina:<topic>]` line of the debug log
 * @property {(condition: any, attributes: any) => boolean} evalCondition the core's evaluator, with every operator it has
 * @property {typeof import("./condition.js").addOperators} addOperators adds operators to it
 * @property {(name: string) => string | undefined} cookie a first-party cookie's value
 * @property {(packed: string) => void} keepContext keep the context for the session (the vtr_ctx cookie, from the first paint on, with consent)
 * @property {(campaign: string, variation: string | null) => void} expose the core's exposure, once per campaign and page view
 * @property {() => boolean} mayStore whether the visitor's consent lets a module store (from the first paint on)
 * @property {() => Holder} [holder] lent by the context module (tag.js carries it with the identity module): a holder of its own
 * @property {() => string} redirectedFrom the campaign whose redirect brought the visitor here ("" if none)
 * @property {(campaign: string) => void} leave the page is leaving for this campaign's redirect: decide nothing more, store and send now; the next page does not expose the campaign again
 * @property {(event: string, payload: any) => void} emit an event for `vitrina.on` handlers
 * @property {[phase: string, end: number][]} phases the tag's own time: the script's start, then the end of each phase of the first decision
 * @property {any[][]} debugLog the debug log's entries so far (?vitrina_debug=1), see index.js `log`
 */

/**
 * What a module may hook; every hook is optional. `install(runtime)` returns them.
 * @typedef {Object} ModuleHooks
 * @property {(query: {[name: string]: string}) => string[] | 0 | undefined} [arrival] at init, where the visitor comes from: [source, medium], or 0 from this site (the attribution module)
 * @property {(attributes: any) => void} [attributes] add to the attribute tree of each decision (before the site's `vitrina.set()` values)
 * @property {(options: DecideOptions) => void} [decideOptions] add to the options of each decision
 * @property {(attributes: any, options: DecideOptions) => [campaign: string, reason: string][] | undefined} [hold] campaigns to leave out of this decision, each with the debug log's reason (the modules' are joined); a list, even empty, also holds back page-view goals, and a list with any campaign the `ready` event
 * @property {(decision: Decision, wanted: {[campaign: string]: Action[]}) => boolean | undefined | void} [apply] before the swaps, which it may change; true when the page is leaving (nothing is applied)
 * @property {(raw: any) => void} [context] `vitrina.context(raw)` after init
 * @property {(visit: VisitState) => void} [pageView] a page view starts (the first one, then each SPA navigation), with the visit state as it counts it
 * @property {() => void} [start] once, after the first decision and swaps (idle time or pagehide): listeners, timers
 * @property {() => void} [decided] after a decision that may settle what was held back (a module's `decide`, DOMContentLoaded)
 * @property {(name: string) => void} [track] `vitrina.track(name)`
 * @property {(entry: any[]) => void} [debug] an entry of the debug log (?vitrina_debug=1)
 * @property {() => {identity?: string, made?: any, features?: {[name: string]: number}, first_exposure?: any, internal?: boolean} | undefined} [batch] fields to add to each collect batch
 * @property {(token: any) => void} [identify] `vitrina.identify(token)`
 * @property {(given: boolean) => void} [consent] `vitrina.consent(given)`: a refusal deletes what the module stored
 */

/** @typedef {(runtime: ModuleRuntime) => ModuleHooks} ModuleInstall */

/**
 * Holds campaigns back until what they wait for comes, their elements hidden meanwhile
 * (context.js `holder`): the keys held for this decision; called with nothing, it holds nothing.
 * @typedef {(attributes?: any, options?: DecideOptions, paths?: RegExp, customer?: boolean) => Set<string>} Holder
 */

/**
 * `vitrina.init`'s options.
 * @typedef {Object} InitOptions
 * @property {Bundle | null} [bundle]
 * @property {string} [endpoint] absolute URL of `/v1/sites/<site>`; default: the tag script's own URL without `/tag.js`
 * @property {ServerContext} [context]
 * @property {string[]} [reads] what the bundle's conditions read of what the tag works for only when read: "context" (server-resolved: the context module asks for it), "products" (the data layer's viewed products, read before each decision), "document" (page title, type, lang and the products: decide again at DOMContentLoaded); tag.js gives it, the default is all
 * @property {{[campaign: string]: string}} [preview] set by the tag itself for ?vitrina_preview: the variations it forces
 */

export {}
