// bench/ui_page.js - times dm's web page in headless Chromium for
// bench/ui.sh: logs in once, then each run opens the page afresh (from
// about:blank) and waits for what it shows to be there.
//
// Usage: node ui_page.js URL USER KEY DOT DOTS RUNS
// Prints one line per run and view: "list|dot|more RUN TOTAL_MS RPC_MS
// N_RPC DCL_MS", TOTAL_MS from navigation start (performance.timeOrigin) to the
// first animation frame where the view is there (the DOTS rows of the
// list; DOT's title and its first 100 commits; after More, 200 commits:
// from the click), RPC_MS the summed durations of the page's POST
// /ui/rpc calls meanwhile (the browser's resource timing: request sent to
// the last byte of the answer), DCL_MS when the page's HTML and script
// were loaded and run (DOMContentLoaded's end; of the navigation, so the
// same for more as for dot). Exits 1, saying why, at the first failure.
'use strict';

const { chromium } = require('playwright-core');

const [url, user, key, dot, ndots, runs] = process.argv.slice(2);

// The first frame where the view is there (view "list": arg rows of dots;
// "dot": the dot arg.dot titled, arg.n commits listed): the page's
// performance.now() then, and the RPC time since `since` (ms, same clock).
function when(page, view, arg, since) {
	return page.waitForFunction(([v, a, s]) => {
		const there = v === 'list' ?
			document.querySelectorAll('#dots tbody tr').length === a :
			document.getElementById('dot-title').textContent === a.dot &&
				document.querySelectorAll('#log li').length === a.n;
		if (!there)
			return false;
		const rpc = performance.getEntriesByType('resource')
			.filter((e) => e.name.endsWith('/ui/rpc') && e.startTime >= s);
		const nav = performance.getEntriesByType('navigation')[0];
		return { at: performance.now(), rpc: rpc.reduce((t, e) => t + e.duration, 0),
			n: rpc.length, dcl: nav ? nav.domContentLoadedEventEnd : 0 };
	}, [view, arg, since], { polling: 'raf', timeout: 60000 }).then((h) => h.jsonValue());
}

function line(view, run, r, from) {
	console.log([view, run, (r.at - from).toFixed(1), r.rpc.toFixed(1), r.n,
		r.dcl.toFixed(1)].join(' '));
}

async function main() {
	const browser = await chromium.launch({
		executablePath: '/usr/bin/chromium',
		args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
			'--disable-background-networking', '--disable-component-update', '--disable-sync'],
	});
	try {
		const context = await browser.newContext({ ignoreHTTPSErrors: true,
			viewport: { width: 1280, height: 800 } });
		const page = await context.newPage();
		await page.goto(url + '/ui/');
		await page.getByLabel('User name').fill(user);
		await page.getByLabel('API key').fill(key);
		await page.getByRole('button', { name: 'Log in' }).click();
		await page.locator('#dots tbody tr').first().waitFor({ timeout: 60000 });
		for (let i = 1; i <= Number(runs); i++) {
			await page.goto('about:blank');
			await page.goto(url + '/ui/#/');
			line('list', i, await when(page, 'list', Number(ndots), 0), 0);

			await page.goto('about:blank');
			await page.goto(url + '/ui/#/dot/' + encodeURIComponent(dot));
			line('dot', i, await when(page, 'dot', { dot: dot, n: 100 }, 0), 0);
			if (!(await page.locator('#log-more').isVisible()))
				throw new Error('no More button under 100 of the commits');

			const t0 = await page.evaluate(() => performance.now());
			await page.locator('#log-more').click();
			line('more', i, await when(page, 'dot', { dot: dot, n: 200 }, t0), t0);
		}
	} finally {
		await browser.close();
	}
}

main().catch((e) => {
	console.error('ui_page.js: ' + e.message);
	process.exit(1);
});
