// The Print button of the recovery-codes page. The button is hidden in the HTML and shown only
// here, where it can work; without this script the page says how to print instead.
'use strict';

for (const button of document.querySelectorAll('button[data-print]')) {
  button.hidden = false;
  button.addEventListener('click', () => window.print());
}
