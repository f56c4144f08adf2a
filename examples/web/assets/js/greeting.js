// A second script in a nested folder, to show that bundles keep their directory layout.
window.ferryGreeting = function ferryGreeting() {
  return 'built into the app (no live update yet)';
};
