// The ESM entry: evaluation only, with every operator, and no other side effect (the tag's runtime is index.js).
import { addOperators } from "./condition.js"
import { rareOperators } from "./operators.js"

addOperators(rareOperators)

export { evalCondition } from "./condition.js"
export { bucketText, hash } from "./hash.js"
export { chooseVariation, decide } from "./decide.js"
