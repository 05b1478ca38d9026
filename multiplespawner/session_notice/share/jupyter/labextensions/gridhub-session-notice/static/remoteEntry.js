// gridhub-session-notice: a JupyterLab 4 federated extension written by hand (no build step).
//
// JupyterLab's bootstrap loads this script, then calls init(shareScope) on the container it
// registers in window._JUPYTERLAB; index.out.js then calls get('./extension') and the factory it
// resolves to, and reads the plugins from the module's `default`. The plugin needs no shared
// module: it reads the page config (jupyter-config-data) and writes to the DOM.
//
// The server puts `gridhubSessionEnd` and `gridhubSessionWarning` (ISO 8601) into the page config
// (see etc/jupyter/jupyter_server_config.py). From the warning time on, a banner counts down:
// "Your session ends at HH:MM (in N minutes); save your work."
(function () {
  'use strict';

  var NAME = 'gridhub-session-notice';
  var BANNER_ID = 'gridhub-session-notice';

  function pageConfig() {
    var element = document.getElementById('jupyter-config-data');
    if (!element) {
      return {};
    }
    try {
      return JSON.parse(element.textContent || '{}');
    } catch (error) {
      return {};
    }
  }

  // Only ISO 8601 with a time zone, as the spawner writes it: browsers' Date.parse also reads
  // loose text (Chromium finds a year in '<img src=x onerror=...1>').
  var ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

  function instant(value) {
    return typeof value === 'string' && ISO.test(value) ? Date.parse(value) : NaN;
  }

  function clock(date) {
    function pad(n) {
      return (n < 10 ? '0' : '') + n;
    }
    return pad(date.getHours()) + ':' + pad(date.getMinutes());
  }

  function remaining(seconds) {
    if (seconds >= 120) {
      return 'in ' + Math.ceil(seconds / 60) + ' minutes';
    }
    var whole = Math.max(0, Math.ceil(seconds));
    return 'in ' + whole + (whole === 1 ? ' second' : ' seconds');
  }

  function banner() {
    var element = document.getElementById(BANNER_ID);
    if (element) {
      return element;
    }
    element = document.createElement('div');
    element.id = BANNER_ID;
    element.setAttribute('role', 'alert');
    element.style.cssText = [
      'position: fixed',
      'top: 8px',
      'left: 50%',
      'transform: translateX(-50%)',
      'z-index: 10000',
      'padding: 8px 16px',
      'border-radius: 4px',
      'border: 1px solid #c77c02',
      'background: #fff3cd',
      'color: #5c3c00',
      'font-family: var(--jp-ui-font-family, sans-serif)',
      'font-size: 14px',
      'box-shadow: 0 2px 6px rgba(0, 0, 0, 0.25)'
    ].join('; ');
    document.body.appendChild(element);
    return element;
  }

  function watch(end, warning) {
    function tick() {
      var now = Date.now();
      if (now < warning) {
        setTimeout(tick, Math.min(warning - now, 60000));
        return;
      }
      var left = (end - now) / 1000;
      var text =
        left > 0
          ? 'Your session ends at ' +
            clock(new Date(end)) +
            ' (' +
            remaining(left) +
            '); save your work.'
          : 'Your session ended at ' + clock(new Date(end)) + '; the server is being stopped.';
      banner().textContent = text;
      if (left > 0) {
        setTimeout(tick, 1000);
      }
    }
    tick();
  }

  var plugin = {
    id: NAME + ':plugin',
    description: 'Warns before the session ends and the server is stopped.',
    autoStart: true,
    activate: function () {
      var config = pageConfig();
      var end = instant(config.gridhubSessionEnd);
      document.body.setAttribute('data-gridhub-session-notice', isNaN(end) ? 'none' : 'armed');
      if (isNaN(end)) {
        return;
      }
      var warning = instant(config.gridhubSessionWarning);
      watch(end, isNaN(warning) ? end - 5 * 60 * 1000 : warning);
    }
  };

  window._JUPYTERLAB = window._JUPYTERLAB || {};
  window._JUPYTERLAB[NAME] = {
    init: function () {
      return Promise.resolve();
    },
    get: function (module) {
      if (module !== './extension') {
        return Promise.reject(new Error(NAME + ' has no module ' + module));
      }
      return Promise.resolve(function () {
        return { __esModule: true, default: [plugin] };
      });
    }
  };
})();
