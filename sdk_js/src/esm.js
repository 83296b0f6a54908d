// The ESM entry: evaluation only, no side effects (the tag's runtime is index.js).
export { evalCondition } from "./condition.js"
export { bucketText, hash } from "./hash.js"
export { chooseVariation, decide } from "./decide.js"
