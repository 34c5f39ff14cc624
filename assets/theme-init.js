// Paints the saved theme before the app loads, so dark mode does not flash white. A separate file
// (not inline) so a strict Content-Security-Policy can allow it.
try {
  var s = JSON.parse(localStorage.getItem('chinwag:settings') || '{}')
  var d = s.theme === 'dark' || (s.theme !== 'light' && matchMedia('(prefers-color-scheme: dark)').matches)
  document.documentElement.dataset.theme = d ? 'dark' : 'light'
} catch (e) {}
