// The app's entry point. In a real Capacitor app this file comes from your bundler and
// imports the plugin: import { CapacitorUpdater } from '@capgo/capacitor-updater'.
const updater = window.Capacitor?.Plugins?.CapacitorUpdater;

async function start() {
  document.querySelector('#version span').textContent = window.ferryGreeting();
  if (!updater) {
    return; // opened in a plain browser: nothing to confirm
  }
  // Tell the plugin this bundle started correctly. Without this call within
  // appReadyTimeout (10 s by default) the plugin reports update_fail and rolls back.
  await updater.notifyAppReady();
  const { bundle } = await updater.current();
  document.querySelector('#version span').textContent = bundle.version;
}

start();
