// A Stryker ignorer (stryker.config.mjs `ignorers: ['logging']`): the arguments of log calls
// (`log.warn(...)`, `this.opts.log.info(...)`, `this.#opts.log?.error(...)`) are not mutated.
// What a log line says decides nothing the exporter serves, and the tests run with a silent
// logger; mutants there would only be noise in the score.
import { PluginKind, declareValuePlugin } from '@stryker-mutator/api/plugin';

const LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal']);

/** Whether `node` (a babel AST node) is the object a log method is called on: `log`, `x.log`, `x?.log`. */
function isLogger(node) {
  if (!node) return false;
  if (node.type === 'Identifier') return node.name === 'log';
  if (node.type === 'MemberExpression' || node.type === 'OptionalMemberExpression') {
    return !node.computed && node.property.type === 'Identifier' && node.property.name === 'log';
  }
  return false;
}

export function isLogCall(node) {
  if (node.type !== 'CallExpression' && node.type !== 'OptionalCallExpression') return false;
  const callee = node.callee;
  if (callee.type !== 'MemberExpression' && callee.type !== 'OptionalMemberExpression') return false;
  return !callee.computed && callee.property.type === 'Identifier' && LEVELS.has(callee.property.name) && isLogger(callee.object);
}

export const strykerPlugins = [
  declareValuePlugin(PluginKind.Ignore, 'logging', {
    shouldIgnore(path) {
      return isLogCall(path.node) ? 'a log call: says what happened, decides nothing' : undefined;
    },
  }),
];
