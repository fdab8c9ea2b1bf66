// Modules required on first use, in one place: re2js (the regex engine, 100+ ms of module code
// that commands and checklists without a regex never pay) and the validators the build
// precompiled (dist/config/validators.cjs, most of half a MB). Here they are read from
// node_modules and dist/config when first needed. The CommonJS bundle that `readiness validate`
// runs from (dist/bundle/validate.cjs, src/build/bundle.ts) replaces this module with one that
// bundles both into that file, so they come under its V8 code cache (src/code-cache.ts) instead
// of being read and compiled from source at every run: the same code, loaded at the same
// moment, compiled once by the build.
import { createRequire } from 'node:module';
import { packagePath } from './paths.js';

// Resolved from the package root (src/paths.ts): the same from src/, dist/ and the bundles.
const require = createRequire(packagePath('package.json'));

/** The validators src/build/validators.ts writes: found from the package root by src/, dist/ and the bundle alike. */
export const PRECOMPILED = packagePath('dist', 'config', 'validators.cjs');

export const requireRe2js = (): unknown => require('re2js');

/** Throws MODULE_NOT_FOUND when the build did not write them (running from src/ under tsx). */
export const requirePrecompiled = (): unknown => require(PRECOMPILED);
