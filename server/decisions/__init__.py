"""Who gets what: the condition language, hashing and bucketing, and `decide` (the twins of
sdk_js/src/condition.js, hash.js and decide.js, held together by spec/)."""
