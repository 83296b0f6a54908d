// @ts-check
// The tag's own time, phase by phase (the debug module turns them into performance.measure()s).
// Imported first by index.js, so the first entry is taken before any other module of the build runs.

/** @type {[phase: string, end: number][]} phases in order, each ending where the next starts; the first is the script's start */
export const phases = [["", performance.now()]]

/** The phase `name` ends now. @param {string} name */
export const endPhase = (name) => phases.push([name, performance.now()])
