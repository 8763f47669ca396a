// ui-test.js - the web page in a real browser: Debian's chromium, headless,
// driven by playwright-core (tests/e2e/t1204-ui-browser.sh runs it against
// a dmd it set up with the dots `shop` (branches master and autumn, commits
// "first" and "second") and `cart`; it makes `shed` itself, to see the
// list's polling show it).
//
// Usage: node ui-test.js URL USER KEY SHOTS_DIR
// Prints one line per step that passed; exits 1 at the first that fails,
// saying what it saw. Screenshots go to SHOTS_DIR (ui-dots.png, ui-dot.png,
// ui-375.png).
'use strict';

const fs = require('fs');
const { chromium } = require('playwright-core');

const axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const [url, user, key, shots] = process.argv.slice(2);

function ok(what) {
	console.log('ok - ' + what);
}

function check(cond, what, saw) {
	if (!cond)
		throw new Error(what + (saw === undefined ? '' : ': saw ' + JSON.stringify(saw)));
	ok(what);
}

// What the page fetches for itself: status of a POST /ui/rpc with headers.
function rpcStatus(page, headers) {
	return page.evaluate(async (h) => {
		const r = await fetch('/ui/rpc', {
			method: 'POST',
			headers: Object.assign({ 'Content-Type': 'application/json' }, h),
			body: '{"jsonrpc":"2.0","id":1,"method":"dots.list"}',
		});
		return r.status;
	}, headers);
}

// axe-core's WCAG 2 A and AA rules (labels, contrast, headings, names) on
// what the page shows now: the violations, as "rule: target" lines. axe is
// evaluated through the browser's debugging protocol, which the page's
// Content-Security-Policy (left on) does not govern.
async function axe(page) {
	if (!(await page.evaluate(() => Boolean(window.axe))))
		await page.evaluate(axeSource);
	return page.evaluate(async () => {
		const r = await window.axe.run(document, {
			runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'best-practice'] },
		});
		return r.violations.map((v) => v.id + ': ' + v.nodes.map((n) => n.target.join(' ')).join(', '));
	});
}

// The page's own accessibility basics: every input has a label, headings
// go down one level at a time.
function a11y(page) {
	return page.evaluate(() => {
		const bad = [];
		for (const i of document.querySelectorAll('input'))
			if (!i.labels || i.labels.length === 0)
				bad.push('input #' + i.id + ' has no label');
		let last = 0;
		for (const h of document.querySelectorAll('h1, h2, h3, h4')) {
			if (h.closest('[hidden]'))
				continue;
			const level = Number(h.tagName[1]);
			if (level > last + 1)
				bad.push(h.tagName + ' "' + h.textContent + '" after h' + last);
			last = level;
		}
		return bad;
	});
}

async function main() {
	const browser = await chromium.launch({
		executablePath: '/usr/bin/chromium',
		args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
			'--disable-background-networking', '--disable-component-update', '--disable-sync'],
	});
	try {
		// the test's dmd has its own CA, which this browser does not know
		const context = await browser.newContext({ ignoreHTTPSErrors: true,
			viewport: { width: 1280, height: 800 } });
		const page = await context.newPage();
		// the page's timers on a clock the test moves (its polling)
		await page.clock.install();

		await page.goto(url + '/ui/');
		await page.getByLabel('API key').waitFor();
		check(await page.locator('#dots-view').isHidden(), 'without a session: the login form only');
		let found = await axe(page);
		check(found.length === 0, 'axe-core: the login form passes WCAG 2 AA', found);

		await page.getByLabel('User name').fill(user);
		await page.getByLabel('API key').fill('0'.repeat(64));
		await page.getByRole('button', { name: 'Log in' }).click();
		await page.locator('#error').waitFor();
		check((await page.locator('#error').textContent()).includes('invalid user name or API key'),
			'a wrong key is refused, saying so');

		await page.getByLabel('API key').fill(key);
		await page.getByRole('button', { name: 'Log in' }).click();
		await page.locator('#dots tbody tr').first().waitFor();
		const names = await page.locator('#dots tbody tr td:first-child').allTextContents();
		check(names.join(',') === 'cart,shop', 'logged in: the dots are listed', names);
		const cookies = await context.cookies();
		const c = cookies.find((k) => k.name === 'dm_ui');
		check(c && c.httpOnly && c.secure && c.sameSite === 'Strict',
			'the session cookie is HttpOnly, Secure, SameSite=Strict', c);
		found = await a11y(page);
		check(found.length === 0, 'inputs labelled, headings in order', found);
		found = await axe(page);
		check(found.length === 0, 'axe-core: the list passes WCAG 2 AA', found);

		await page.getByLabel('Search dots').fill('sh');
		await page.waitForFunction(() => document.querySelectorAll('#dots tbody tr').length === 1);
		const narrowed = await page.locator('#dots tbody tr td:first-child').allTextContents();
		check(narrowed.join(',') === 'shop', 'the search box narrows the list', narrowed);
		await page.screenshot({ path: shots + '/ui-dots.png', fullPage: true });

		// another client makes a dot: the list shows it at the next poll
		const made = await page.evaluate(async () => {
			const csrf = (await (await fetch('/ui/session')).json()).csrf;
			const r = await fetch('/ui/rpc', {
				method: 'POST',
				headers: { 'Content-Type': 'application/json', 'X-DM-CSRF': csrf },
				body: '{"jsonrpc":"2.0","id":1,"method":"dots.create","params":{"dot":"shed"}}',
			});
			return (await r.json()).result ? 'made' : 'failed';
		});
		check(made === 'made', 'a new dot through the API', made);
		await page.clock.runFor(5000);
		await page.waitForFunction(() => document.querySelectorAll('#dots tbody tr').length === 2,
			null, { timeout: 10000 });
		const live = await page.locator('#dots tbody tr td:first-child').allTextContents();
		check(live.join(',') === 'shed,shop', 'the list shows it at the next poll, search kept', live);

		await page.getByRole('link', { name: 'shop' }).click();
		await page.locator('#log li').first().waitFor();
		check(await page.locator('#dot-title').textContent() === 'shop', 'a dot opens');
		const branches = await page.locator('#branches li').allTextContents();
		check(branches.join(',') === 'autumn (current),master', 'its branches are shown', branches);
		const log = await page.locator('#log .msg').allTextContents();
		check(log.join(',') === 'second,first', 'its current branch\u2019s commits, newest first', log);
		check(await page.locator('#log-more').isHidden(), 'no More button: the whole log is shown');
		await page.screenshot({ path: shots + '/ui-dot.png', fullPage: true });
		found = await axe(page);
		check(found.length === 0, 'axe-core: a dot passes WCAG 2 AA', found);

		await page.getByRole('link', { name: 'master' }).click();
		await page.waitForFunction(() => document.querySelectorAll('#log li').length === 1);
		const mlog = await page.locator('#log .msg').allTextContents();
		check(mlog.join(',') === 'first', 'another branch\u2019s commits', mlog);

		// the same session in a phone's width
		await page.setViewportSize({ width: 375, height: 667 });
		await page.goto(url + '/ui/');
		await page.locator('#dots tbody tr').first().waitFor();
		const width = () => page.evaluate(() => document.documentElement.scrollWidth);
		check(await width() <= 375, 'at 375 pixels the list fits the width', await width());
		await page.getByRole('link', { name: 'shop' }).click();
		await page.locator('#log li').first().waitFor();
		check(await width() <= 375, 'at 375 pixels a dot fits the width', await width());
		await page.screenshot({ path: shots + '/ui-375.png', fullPage: true });

		const csrf = await page.evaluate(async () => (await (await fetch('/ui/session')).json()).csrf);
		check(await rpcStatus(page, { 'X-DM-CSRF': csrf }) === 200, 'a call with the CSRF token is answered');
		check(await rpcStatus(page, {}) === 403, 'a call without the CSRF token is refused');
		check(await rpcStatus(page, { 'X-DM-CSRF': 'f'.repeat(64) }) === 403,
			'a call with a wrong CSRF token is refused');

		await page.getByRole('button', { name: 'Log out' }).click();
		await page.getByLabel('API key').waitFor();
		check(await page.locator('#dot-view').isHidden(), 'logged out: back to the login form');
		await context.addCookies([c]);
		check(await rpcStatus(page, { 'X-DM-CSRF': csrf }) === 401,
			'the old session cookie and token are refused after logout');
		await page.reload();
		await page.getByLabel('API key').waitFor();
		check(await page.locator('#dots-view').isHidden(), 'a reload after logout shows the login form');

	} finally {
		await browser.close();
	}
}

main().catch((e) => {
	console.log('not ok - ' + e.message);
	process.exit(1);
});
