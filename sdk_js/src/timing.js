// @ts-check
// The tag's own time, phase by phase. Imported first by index.js, so `scriptStart` is taken
// before any other module of the build runs.

export const scriptStart = performance.now()

/** @type {[phase: string, end: number][]} phases in order; each ends where the next starts */
export const phases = []

/** The phase `name` ends now. @param {string} name */
export const endPhase = (name) => phases.push([name, performance.now()])
