'use strict'
// The DIY module the conformance tests give the reference stand-in (MODULE=reference.js,
// copied next to the stand-in's bench-functions.js). Each function does what the plugin
// tests/testkit/wrapgate_testkit/reference.py does, so the same request to both
// must get the same answer. Every function is also exported at the top level, for
// calls without a `type` ("flat" calls).

const bench = require('./bench-functions.js')

function echo (options, name) {
  options.function = name
  return options
}

function given (options, fallback) {
  return Object.prototype.hasOwnProperty.call(options, 'resp') ? options.resp : fallback
}

function named (message, name) {
  const error = new Error(message)
  error.name = name
  return error
}

const installer = {
  connectorInstallerFunction: (options, cb) => cb(null, echo(options, 'connectorInstallerFunction')),
  runInstallerErrorStep: (options, cb) => cb(new Error('runInstallerErrorStep')),
  runInstallerSuccessStep: (options, cb) => cb(null, echo(options, 'runInstallerSuccessStep'))
}

const uninstaller = {
  connectorUninstallerFunction: (options, cb) => cb(null, echo(options, 'connectorUninstallerFunction')),
  runUninstallerErrorStep: (options, cb) => cb(new Error('runUninstallerErrorStep')),
  runUninstallerSuccessStep: (options, cb) => cb(null, echo(options, 'runUninstallerSuccessStep'))
}

const settings = {
  persistSettings: (options, cb) =>
    options.error ? cb(new Error('persistSettings')) : cb(null, echo(options, 'persistSettings')),
  refreshMetadata: (options, cb) => cb(null, echo(options, 'refreshMetadata'))
}

const utilities = {
  myUtility: (options, cb) =>
    options.error ? cb(new Error('myUtility error')) : cb(null, echo(options, 'myUtility'))
}

const failures = {
  coded: () => ({ code: 'quota_exceeded', message: 'daily quota used up' }),
  named: () => named('named failure', 'named_error'),
  type: () => new TypeError('bad type'),
  empty: () => new Error(),
  secret: (options) => new Error('token ' + options.bearerToken + ' was refused')
}

const hooks = {
  doSomething: (options, cb) => cb(null, [echo(options, 'doSomething')]),
  doSomethingError: (options, cb) => cb(named('doSomethingError', 'my_error')),
  stringifyDateObject: (options, cb) => {
    for (const key of ['lastExportDateTime', 'currentExportDateTime']) {
      if (options[key] && typeof options[key] === 'object') options[key] = options[key].toISOString()
    }
    cb(null, [options])
  },
  echoResponse: (options, cb) => cb(null, options.resp),
  respondWithNonSearializableObject: (options, cb) => cb(null, { a: 'b', date: new Date() }),
  fail: (options, cb) => {
    const make = failures[options.error]
    cb(make ? make(options) : { code: 'no_error_asked', message: 'fail needs options.error' })
  },
  savePage: (options, cb) =>
    cb(null, given(options, { data: options.data, errors: options.errors || [], abort: false })),
  mapBefore: (options, cb) => cb(null, given(options, options.data.map((record) => ({ data: record })))),
  mapAfter: (options, cb) => cb(null, given(options, options.postMapData.map((record) => ({ data: record })))),
  afterSubmit: (options, cb) => cb(null, given(options, options.responseData)),
  afterResponseMap: (options, cb) => cb(null, given(options, options.postResponseMapData)),
  afterAggregate: (options, cb) => cb(null, given(options, { received: options.postAggregateData }))
}

const wrappers = Object.assign({}, bench.wrappers, {
  pingError: (options, cb) => cb(named('pingMessage', 'pingCode')),
  // Passes the options back in the id, as the reference's own test does.
  importOptions: (options, cb) => cb(null, [{ statusCode: 200, id: options }])
})

const groups = { installer, uninstaller, settings, utilities, hooks, wrappers }
module.exports = Object.assign({}, groups)
for (const group of Object.values(groups)) Object.assign(module.exports, group)
