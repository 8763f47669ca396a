// app.js - dm's web page (docs/ui.md): logs in, lists the dots with a
// search box, shows a dot's branches and a branch's commits (LOG_PAGE at a
// time, More for the next), logs out; what it shows is asked for again every
// POLL_MS while the page is visible.
//
// Always true here: every figure comes from dmd's JSON-RPC API through
// POST /ui/rpc (the same methods the command line calls), every change
// carries the session's CSRF token in X-DM-CSRF, and text from the server
// is put into the page as text (textContent), never as HTML. Only the
// newest showing of a view renders: one that a later one overtook (the
// address changed, or the next poll came) stops at its next answer.
'use strict';

(function () {
	const POLL_MS = 5000;
	const LOG_PAGE = 100; // commits shown at first, and added by More
	const LOG_LIMIT_MAX = 1000; // the most one dots.log call answers
	let csrf = null;
	let dots = [];
	let shown = 0; // counts the showings of a view; the newest renders
	let rendered = ''; // what the view shows now, as JSON: the same is not rendered again
	let logKey = ''; // the dot and branch whose log is shown
	let logWant = LOG_PAGE; // how many of its commits the page shows
	const $ = (id) => document.getElementById(id);

	function show(view) {
		for (const v of ['login-view', 'dots-view', 'dot-view'])
			$(v).hidden = v !== view;
	}

	function say(text) {
		$('error').textContent = text || '';
		$('error').hidden = !text;
	}

	function loggedIn(s) {
		csrf = s.csrf;
		$('who').textContent = s.user;
		$('who').hidden = false;
		$('logout').hidden = false;
	}

	function loggedOut() {
		csrf = null;
		dots = [];
		rendered = '';
		$('who').hidden = true;
		$('logout').hidden = true;
		show('login-view');
	}

	// A JSON-RPC call for the session's user; throws Error(message).
	async function rpc(method, params) {
		const r = await fetch('/ui/rpc', {
			method: 'POST',
			credentials: 'same-origin',
			headers: { 'Content-Type': 'application/json', 'X-DM-CSRF': csrf || '' },
			body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: method, params: params || {} }),
		});
		const j = await r.json();
		if (r.status === 401) {
			loggedOut();
			throw new Error(j.error ? j.error.message : 'logged out');
		}
		if (j.error)
			throw new Error(j.error.message);
		return j.result;
	}

	function bytes(n) {
		const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
		let i = 0;
		while (n >= 1024 && i < units.length - 1) {
			n /= 1024;
			i++;
		}
		return (i ? n.toFixed(1) : String(n)) + ' ' + units[i];
	}

	function cell(row, text, cls) {
		const td = document.createElement('td');
		if (cls)
			td.className = cls;
		if (text instanceof Node)
			td.appendChild(text);
		else
			td.textContent = text;
		row.appendChild(td);
	}

	function dotName(d) {
		return d.namespace === 'admin' ? d.name : d.namespace + '/' + d.name;
	}

	function dotLink(name, branch) {
		return '#/dot/' + encodeURIComponent(name) + (branch ? '/' + encodeURIComponent(branch) : '');
	}

	function renderDots() {
		const q = $('search').value.trim().toLowerCase();
		const body = $('dots').tBodies[0];
		const matching = dots.filter((d) => dotName(d).toLowerCase().includes(q));
		body.replaceChildren();
		for (const d of matching) {
			const tr = document.createElement('tr');
			const a = document.createElement('a');
			a.href = dotLink(dotName(d));
			a.textContent = dotName(d);
			cell(tr, a);
			cell(tr, d.branch);
			cell(tr, bytes(d.size || 0), 'num');
			cell(tr, String(d.commits || 0), 'num');
			cell(tr, bytes(d.dirty || 0), 'num');
			cell(tr, String((d.containers || []).length), 'num');
			body.appendChild(tr);
		}
		$('dots-none').hidden = matching.length > 0;
	}

	async function showDots(me) {
		show('dots-view');
		const list = (await rpc('dots.list', { refresh: false })).dots;
		const now = JSON.stringify(['dots', list]);
		if (me !== shown || now === rendered)
			return;
		rendered = now;
		dots = list;
		renderDots();
	}

	function commitItem(c) {
		const li = document.createElement('li');
		const msg = document.createElement('div');
		const meta = document.createElement('div');
		msg.className = 'msg';
		msg.textContent = c.message || '(no message)';
		meta.className = 'meta';
		const md = Object.entries(c.metadata || {}).map(([k, v]) => k + '=' + v);
		meta.textContent = [c.id, c.author, c.time].concat(md).join(' · ');
		li.append(msg, meta);
		return li;
	}

	// The newest logWant commits of a branch, from its head down, a page
	// (dots.log's limit) at a time; more: whether older ones follow.
	async function logShown(name, branch) {
		const key = JSON.stringify([name, branch]);
		if (key !== logKey) {
			logKey = key;
			logWant = LOG_PAGE;
		}
		let commits = [], page = null;
		do {
			const p = { dot: name, branch: branch,
				limit: Math.min(LOG_LIMIT_MAX, logWant - commits.length) };
			if (page)
				p.before = page.next;
			page = await rpc('dots.log', p);
			commits = commits.concat(page.commits);
		} while (commits.length < logWant && page.more && page.next);
		return { commits: commits, more: !!page.more };
	}

	async function showDot(me, name, branch) {
		show('dot-view');
		const d = await rpc('dots.show', { dot: name });
		branch = branch || d.branch;
		const log = await logShown(name, branch);
		const now = JSON.stringify(['dot', name, branch, d.branch, d.branches.map((b) => b.name),
			log.commits, log.more]);
		if (me !== shown || now === rendered)
			return;
		rendered = now;
		$('dot-title').textContent = name;
		const list = $('branches');
		list.replaceChildren();
		for (const b of d.branches) {
			const li = document.createElement('li');
			const a = document.createElement('a');
			a.href = dotLink(name, b.name);
			a.textContent = b.name + (b.name === d.branch ? ' (current)' : '');
			if (b.name === branch)
				a.setAttribute('aria-current', 'page');
			li.appendChild(a);
			list.appendChild(li);
		}
		$('log-title').textContent = 'Commits on ' + branch;
		$('log').replaceChildren(...log.commits.map(commitItem));
		$('log-more').hidden = !log.more;
	}

	// More: the next page of the log shown, below the commits there.
	function moreLog() {
		logWant += LOG_PAGE;
		route();
	}

	// Shows what the address names: #/ the dots, #/dot/NAME[/BRANCH] a dot.
	async function route() {
		const me = ++shown;

		say('');
		if (!csrf)
			return loggedOut();
		const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
		try {
			if (parts[0] === 'dot' && parts[1])
				await showDot(me, parts[1], parts[2]);
			else
				await showDots(me);
		} catch (e) {
			if (csrf && me === shown)
				say(e.message);
		}
	}

	// The live part: the view shown, asked for again.
	function poll() {
		if (csrf && !document.hidden)
			route();
	}

	async function login(ev) {
		ev.preventDefault();
		say('');
		const user = $('user').value, key = $('key').value;
		const r = await fetch('/ui/login', {
			method: 'POST',
			credentials: 'same-origin',
			headers: { Authorization: 'Basic ' + btoa(user + ':' + key) },
		});
		const j = await r.json();
		if (!r.ok)
			return say(j.error ? j.error.message : 'cannot log in');
		$('key').value = '';
		loggedIn(j);
		await route();
	}

	async function logout() {
		await fetch('/ui/logout', {
			method: 'POST',
			credentials: 'same-origin',
			headers: { 'X-DM-CSRF': csrf || '' },
		});
		loggedOut();
	}

	async function start() {
		$('login-form').addEventListener('submit', login);
		$('logout').addEventListener('click', logout);
		$('search').addEventListener('input', renderDots);
		$('log-more').addEventListener('click', moreLog);
		window.addEventListener('hashchange', route);
		setInterval(poll, POLL_MS);
		const r = await fetch('/ui/session', { credentials: 'same-origin' });
		if (r.ok)
			loggedIn(await r.json());
		await route();
	}

	document.addEventListener('DOMContentLoaded', start);
})();
