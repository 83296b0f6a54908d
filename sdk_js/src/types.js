// @ts-check
// The shapes the SDK reads and keeps, for `tsc -p sdk_js` (JSDoc only: nothing here runs).
// docs/DESIGN.md "Compiled bundle" and "Browser storage" describe them in prose.

/**
 * A condition: MongoDB-style, attribute paths as keys (docs/DESIGN.md "Conditions").
 * @typedef {{[path: string]: any}} Condition
 */

/**
 * One action of a variation (ARCHITECTURE.md "Actions"); every field but `selector` optional.
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
 */

/**
 * What `decide` answers (docs/DESIGN.md "Decision").
 * @typedef {Object} Decision
 * @property {boolean} holdout
 * @property {{[campaign: string]: string}} variations
 * @property {{[campaign: string]: string}} reasons
 * @property {string[]} holdout_campaigns
 */

/**
 * Sticky assignments; `customer` names the customer key a customer-bucketed campaign's one was given to.
 * @typedef {{[campaign: string]: {seed: string, variation: string, customer?: string}}} StickyAssignments
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
 * Server-resolved context: `context.js`, `GET /v1/context`, `init({context})` or session
 * storage `vtr_ctx`. `device.type` is never taken from here (the browser classifies it).
 * @typedef {Object} ServerContext
 * @property {{country?: string | null, region?: string | null, city?: string | null,
 *   continent?: string | null, timezone?: string | null}} [geo]
 * @property {{os?: string, browser?: string}} [device]
 */

/**
 * What the visitor does on this page view (page.scroll, time, idle, exit_intent).
 * @typedef {Object} Behaviour
 * @property {number} start when this page view started (ms)
 * @property {number} lastInput the last user input (ms)
 * @property {number} scroll the deepest scroll so far, %
 * @property {boolean} exitIntent the pointer left through the top of the window
 */

/**
 * An event for `POST .../collect` (docs/DESIGN.md "Events").
 * @typedef {Object} TrackedEvent
 * @property {"exposure" | "conversion"} type
 * @property {string} [campaign]
 * @property {string | null} [variation]
 * @property {boolean} [holdout]
 * @property {boolean} [forced]
 * @property {string} [goal]
 * @property {number} [value]
 * @property {string} [id]
 * @property {number} [version]
 * @property {number} [ts]
 */

/**
 * What the core lends a module (docs/DESIGN.md "Modules").
 * @typedef {Object} ModuleRuntime
 * @property {() => Bundle | null | undefined} bundle the published bundle (null without one)
 * @property {Behaviour} behaviour this page view's (reset in place on each page view): a module may keep it up to date
 * @property {(hideFirst?: boolean) => void} decide decide again and apply, as `vitrina.refresh()` does without a
 *   new page view; hideFirst: the chosen elements stay hidden until applied, as at init
 * @property {() => string} endpoint absolute URL of /v1/sites/<site> ("" when unknown: send nothing)
 * @property {() => string} visitorId
 * @property {(topic: string, text: string) => void} note a `?vitrina_debug=1` line
 * @property {(key: string, value?: any) => any} session sessionStorage, JSON in and out, under the visitor's consent (storage.js)
 * @property {(attributes: any, options: DecideOptions, paths: RegExp, customer?: boolean) => Set<string>} awaiting the
 *   campaigns that must wait for attributes matching `paths` (and for the customer) (context.js awaitingContext)
 */

/**
 * What a module may hook; every hook is optional. `install(runtime)` returns them.
 * @typedef {Object} ModuleHooks
 * @property {(options: DecideOptions) => void} [decideOptions] add to the options of each decision
 * @property {() => void} [pageView] a page view starts (the first one, then each SPA navigation)
 * @property {() => void} [start] once, after the first decision and swaps (idle time or pagehide): listeners, timers
 * @property {(name: string) => void} [track] `vitrina.track(name)`
 * @property {(attributes: any) => void} [attributes] add to the attribute tree before each decision
 * @property {(pending: WaitingCampaigns) => void} [waiting] name the campaigns that must wait for this module (their
 *   elements hidden) before each decision
 * @property {(body: {visitor_id: string, events: TrackedEvent[], identity?: string}) => void} [batch] add to each collect batch
 * @property {(token: string) => void} [identify] `vitrina.identify(token)`
 */

/**
 * A decision's campaigns that wait, and what for (key -> "context", "identity"), with what it decides on.
 * @typedef {Object} WaitingCampaigns
 * @property {Map<string, string>} waiting
 * @property {any} attributes
 * @property {DecideOptions} options
 */

/** @typedef {(runtime: ModuleRuntime) => ModuleHooks} ModuleInstall */

/**
 * `vitrina.init`'s options.
 * @typedef {Object} InitOptions
 * @property {Bundle | null} [bundle]
 * @property {string} [endpoint] absolute URL of `/v1/sites/<site>`; default: the tag script's own URL without `/tag.js`
 * @property {ServerContext} [context]
 * @property {{[campaign: string]: string}} [preview] set by the tag itself for ?vitrina_preview: the variations it forces
 */

export {}
