// The playground page: plays Slack's client for every person in the catalog. It
// polls /playground/state, draws what jitbot sent to the Slack stand-in (messages,
// the modal open for the person acted as, their App Home), and sends what a person
// types, clicks or submits to the playground, which signs it as Slack would.
(function () {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const M = window.Mrkdwn;
  const B = window.BlockKit;

  let state = null;
  let fetchedAt = 0;
  let drawn = '';
  let channel = null; // the open channel tab; null until there is one to open
  const HOME = '@home'; // the Home tab's name in `channel`
  let homeFor = null; // whose App Home was last asked for (app_home_opened)
  let modal = null; // the modal drawn: { key, id, form } from BlockKit.view
  const collapsed = new Set(); // policies whose YAML was folded away

  const people = () => (state ? state.users : []);
  const person = (id) => people().find((p) => p.id === id);
  const ctx = {
    userName: (id) => (person(id) || {}).name || null,
    channelName: (id) => id,
  };
  const selected = () => $('user').value;

  // The playground's time now: the server's at the last poll plus what passed since.
  function now() {
    return state ? Date.parse(state.now) + (Date.now() - fetchedAt) : Date.now();
  }

  function toast(text) {
    const t = $('toast');
    t.textContent = text;
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
  }

  async function post(path, body) {
    const res = await fetch(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const answer = await res.json().catch(() => ({}));
    if (!res.ok) toast(answer.error || 'the playground answered HTTP ' + res.status);
    return answer;
  }

  async function refresh() {
    try {
      const res = await fetch('/playground/state', { cache: 'no-store' });
      state = await res.json();
      fetchedAt = Date.now();
    } catch (e) {
      $('facts').textContent = 'the playground does not answer: is it still running?';
      return;
    }
    // Against a real cluster (--kube) the clock does not jump: the button stays off.
    if (state.clock_jumps === false && !$('advance').hidden) {
      $('advance').hidden = true;
      $('clock').title = 'With --kube the clock runs with real time only: jumping ahead would end real grants early.';
    }
    const key = JSON.stringify([state.users, state.channels, state.dms, state.ephemeral, state.cluster, state.requests, state.homes]);
    if (key !== drawn) {
      drawn = key;
      draw();
    }
    drawModal();
    tick();
  }

  // The modal open for the person acted as, drawn anew only when jitbot changes it
  // (so what is typed in it survives the polls).
  function drawModal() {
    const mine = (state.views || []).filter((v) => v.user === selected());
    const open = mine.length ? mine[mine.length - 1] : null;
    const key = open ? open.id + '#' + open.hash + '#' + selected() : null;
    if ((modal && modal.key) === key) return;
    if (!open) {
      modal = null;
      $('modal').hidden = true;
      $('modal-body').innerHTML = '';
      return;
    }
    // An update of the modal on screen keeps what was typed in it, as in Slack.
    const v = modal && modal.id === open.id ? B.keep(open.view, modal.form.values()) : open.view;
    const hooks = { suggest: (blockId, actionId, value) => suggest(open.id, blockId, actionId, value) };
    const form = B.view(v, ctx, (action) => viewAct(open.id, action), hooks);
    modal = { key, id: open.id, form };
    $('modal-title').textContent = (v.title && v.title.text) || '';
    $('modal-body').innerHTML = '';
    $('modal-body').appendChild(form.node);
    $('modal-submit').hidden = !v.submit;
    $('modal-submit').textContent = (v.submit && v.submit.text) || 'Submit';
    $('modal-close').textContent = (v.close && v.close.text) || 'Cancel';
    $('modal').dataset.callbackId = v.callback_id || '';
    $('modal').hidden = false;
  }

  async function suggest(viewId, blockId, actionId, value) {
    const answer = await post('/playground/view/suggest', { user: selected(), view_id: viewId, block_id: blockId, action_id: actionId, value });
    return answer.options || {};
  }

  // A click or dispatched change in a modal or the App Home, with what is entered.
  async function viewAct(viewId, action) {
    if (action.confirm && !(await confirmed(action.confirm))) return;
    const { confirm, ...sent } = action;
    const values = modal && modal.id === viewId ? modal.form.values() : {};
    await post('/playground/view/act', { user: selected(), view_id: viewId, values, action: sent });
    setTimeout(refresh, 150);
  }

  async function submitModal() {
    if (!modal) return;
    const { id, form } = modal;
    const missing = form.missing();
    if (Object.keys(missing).length) {
      form.errors(missing);
      return;
    }
    $('modal-submit').disabled = true;
    const answer = await post('/playground/view/submit', { user: selected(), view_id: id, values: form.values() });
    $('modal-submit').disabled = false;
    if (answer.outcome === 'errors') {
      form.errors(answer.errors || {});
    } else if (answer.outcome === 'failed') {
      toast(answer.error || 'jitbot did not take the form');
    } else {
      form.errors({});
    }
    refresh();
  }

  async function closeModal() {
    if (!modal) return;
    const id = modal.id;
    modal = null;
    $('modal').hidden = true;
    await post('/playground/view/close', { user: selected(), view_id: id });
    refresh();
  }

  // The Home tab: opening it (or acting as someone else with it open) sends
  // app_home_opened, as Slack does each time a person opens an app's Home.
  async function openHome() {
    homeFor = selected();
    await post('/playground/home', { user: homeFor });
    setTimeout(refresh, 150);
  }

  function drawHome(view) {
    const home = (state.homes || {})[selected()];
    view.appendChild(Object.assign(document.createElement('div'), { className: 'channel-head', textContent: 'jitbot · Home, as @' + (ctx.userName(selected()) || selected()) + ' sees it' }));
    if (!home) {
      view.appendChild(Object.assign(document.createElement('div'), { className: 'empty', textContent: 'jitbot has not published a Home for you yet.' }));
      return;
    }
    const box = document.createElement('div');
    box.className = 'home-view';
    box.dataset.testid = 'home';
    box.appendChild(B.view(home, ctx, (action) => viewAct(home.id, action), {}).node);
    view.appendChild(box);
  }

  // What a button does: confirm first when the button asks for it, then click.
  async function act(where, action) {
    if (action.confirm && !(await confirmed(action.confirm))) return;
    await post('/playground/click', {
      user: where.user,
      channel: where.channel,
      ts: where.ts,
      block_id: action.block_id,
      action_id: action.action_id,
      value: action.value,
    });
    setTimeout(refresh, 150);
  }

  // A button on a message only this person sees (Cancel on a command's answer).
  async function actPrivate(e, action) {
    if (action.confirm && !(await confirmed(action.confirm))) return;
    await post('/playground/click-private', {
      user: e.user,
      n: e.n,
      block_id: action.block_id,
      action_id: action.action_id,
      value: action.value,
    });
    setTimeout(refresh, 150);
  }

  function confirmed(c) {
    const d = $('confirm');
    $('confirm-title').textContent = (c.title && c.title.text) || 'Are you sure?';
    $('confirm-text').innerHTML = c.text && c.text.type === 'mrkdwn' ? M.render(c.text.text, ctx) : M.escapeHtml((c.text && c.text.text) || '');
    $('confirm-ok').textContent = (c.confirm && c.confirm.text) || 'OK';
    $('confirm-ok').className = 'bk-button ' + (c.style === 'danger' ? 'bk-danger' : 'bk-primary');
    $('confirm-deny').textContent = (c.deny && c.deny.text) || 'Cancel';
    return new Promise((resolve) => {
      d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
      d.returnValue = '';
      d.showModal();
    });
  }

  function messageList(messages, where, empty) {
    const box = document.createElement('div');
    if (!messages.length) {
      box.innerHTML = '<div class="empty">' + M.escapeHtml(empty) + '</div>';
      return box;
    }
    messages.forEach((m) => {
      const at = { user: where.user(), channel: where.channel, ts: m.ts };
      const node = B.message(m, ctx, (action) => act({ ...at, user: where.user() }, action));
      if (m.replies && m.replies.length) {
        node.appendChild(Object.assign(document.createElement('div'), {
          className: 'replies-head',
          textContent: m.replies.length + (m.replies.length === 1 ? ' reply' : ' replies'),
        }));
        const replies = document.createElement('div');
        replies.className = 'replies';
        m.replies.forEach((r) => replies.appendChild(B.message(r, ctx, (action) => act({ user: where.user(), channel: where.channel, ts: r.ts }, action))));
        node.appendChild(replies);
      }
      box.appendChild(node);
    });
    return box;
  }

  function drawUsers() {
    const sel = $('user');
    const keep = sel.value;
    if (sel.options.length !== people().length) {
      sel.innerHTML = '';
      people().forEach((p) => {
        const o = document.createElement('option');
        o.value = p.id;
        o.textContent = p.name === p.id ? p.id : p.name + ' (' + p.id + ')';
        sel.appendChild(o);
      });
      if (keep && person(keep)) sel.value = keep;
    }
    const me = person(selected()) || { roles: [], example: null };
    $('roles').textContent = me.roles.join(' · ');
    const hints = ['/jit', me.example, 'list', 'targets', 'help'].filter(Boolean);
    $('hints').innerHTML = '';
    hints.forEach((h) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = h === '/jit' ? '/jit (the form)' : '/jit ' + h;
      b.addEventListener('click', () => { $('text').value = h; $('text').focus(); });
      $('hints').appendChild(b);
    });
    if (!$('text').placeholder || $('text').dataset.for !== selected()) {
      $('text').placeholder = me.example || 'help';
      $('text').dataset.for = selected();
    }
  }

  function drawPrivate() {
    const mine = state.ephemeral.filter((e) => e.user === selected()).slice(-8).reverse();
    const box = $('ephemeral');
    box.innerHTML = mine.length ? '' : '<div class="empty">Answers to your commands and clicks show here, to you alone.</div>';
    mine.forEach((e) => {
      const d = document.createElement('div');
      d.className = 'ephemeral';
      d.innerHTML = e.command ? '<div class="typed">' + M.escapeHtml(e.command) + '</div>' : '<div class="via">via response_url</div>';
      if (Array.isArray(e.blocks) && e.blocks.length) {
        d.appendChild(B.blocks(e.blocks, ctx, (action) => actPrivate(e, action)));
      } else {
        d.insertAdjacentHTML('beforeend', M.render(e.text, ctx));
      }
      box.appendChild(d);
    });
    const dms = $('dms');
    dms.innerHTML = '';
    const list = [...state.dms].sort((a, b) => (b.user === selected()) - (a.user === selected()));
    if (!list.length) dms.innerHTML = '<div class="empty">None yet: jitbot writes to a requester when their access starts, nears its end and ends.</div>';
    list.forEach((dm) => {
      const d = document.createElement('div');
      d.className = 'dm' + (dm.user === selected() ? ' mine' : '');
      d.innerHTML = '<div class="dm-title">jitbot → @' + M.escapeHtml(ctx.userName(dm.user) || dm.user) + '</div>';
      d.appendChild(messageList(dm.messages, { user: () => dm.user, channel: dm.channel }, ''));
      dms.appendChild(d);
    });
  }

  function drawChannels() {
    const chans = state.channels;
    if (channel !== HOME && !chans.find((c) => c.id === channel)) {
      const busy = chans.find((c) => c.kind === 'approvals' && c.messages.length);
      channel = busy ? busy.id : chans.length ? chans[0].id : null;
    }
    const tabs = $('tabs');
    tabs.innerHTML = '';
    const home = document.createElement('button');
    home.type = 'button';
    home.className = 'tab home' + (channel === HOME ? ' active' : '');
    home.dataset.home = 'home';
    home.innerHTML = '<b>Home</b><small>jitbot\'s App Home for you</small>';
    home.addEventListener('click', () => { channel = HOME; drawChannels(); openHome(); });
    tabs.appendChild(home);
    chans.forEach((c) => {
      const t = document.createElement('button');
      t.type = 'button';
      t.className = 'tab' + (c.id === channel ? ' active' : '');
      t.dataset.channel = c.id;
      t.innerHTML = '<b>#' + M.escapeHtml(c.id) + '</b>' + (c.messages.length ? '<span class="count">' + c.messages.length + '</span>' : '') + '<small>' + M.escapeHtml(c.purpose) + '</small>';
      t.addEventListener('click', () => { channel = c.id; drawChannels(); });
      tabs.appendChild(t);
    });
    const open = chans.find((c) => c.id === channel);
    const view = $('channel');
    view.innerHTML = '';
    if (channel === HOME) {
      drawHome(view);
      return;
    }
    if (!open) return;
    view.appendChild(Object.assign(document.createElement('div'), { className: 'channel-head', textContent: '#' + open.id + ' · ' + open.purpose }));
    const empty = open.kind === 'audit' ? 'Every request gets a thread here.' : 'Approval cards for these targets land here. Type a /jit request as a requester.';
    view.appendChild(messageList(open.messages, { user: selected, channel: open.id }, empty));
  }

  function drawCluster() {
    $('cluster-note').textContent = state.facts.cluster + (state.cluster.error ? ' — ' + state.cluster.error : '');
    const box = $('policies');
    box.innerHTML = '';
    if (!state.cluster.policies.length) {
      box.innerHTML = '<div class="empty" data-testid="no-policies">No live policies: nobody has access right now.</div>';
    }
    state.cluster.policies.forEach((p) => {
      const key = p.namespace + '/' + p.name;
      const d = document.createElement('div');
      d.className = 'policy';
      d.dataset.policy = p.name;
      d.innerHTML = '<div class="policy-head"><span>' + M.escapeHtml(key) + '</span><span class="countdown" data-expires="' + M.escapeHtml(p.expires_at || '') + '"></span></div>';
      const det = document.createElement('details');
      det.open = !collapsed.has(key);
      det.addEventListener('toggle', () => (det.open ? collapsed.delete(key) : collapsed.add(key)));
      det.innerHTML = '<summary>YAML</summary><pre></pre>';
      det.querySelector('pre').textContent = p.yaml;
      d.appendChild(det);
      box.appendChild(d);
    });
    const rows = state.requests.map((r) =>
      '<tr><td><code>' + M.escapeHtml(r.id) + '</code></td><td>' + M.escapeHtml(r.target) + ' · ' + M.escapeHtml(r.duration) +
      '</td><td>@' + M.escapeHtml(ctx.userName(r.requester) || r.requester) + '</td><td><span class="state ' + M.escapeHtml(r.state) + '">' +
      M.escapeHtml(r.state) + '</span>' + (r.state === 'pending' ? ' ' + r.approvals + '/' + r.required : '') + '</td></tr>');
    $('requests').innerHTML = rows.length ? '<tr><th>id</th><th>target</th><th>by</th><th>state</th></tr>' + rows.join('') : '<tr><td class="empty">No requests yet.</td></tr>';
  }

  function draw() {
    $('facts').textContent = 'Slack: ' + state.facts.slack + ' · store: ' + state.facts.store;
    drawUsers();
    drawPrivate();
    drawChannels();
    drawCluster();
  }

  function clock(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(s / 3600);
    const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
    const ss = String(s % 60).padStart(2, '0');
    return (h ? h + ':' : '') + mm + ':' + ss;
  }

  // Clock and countdowns move between polls.
  function tick() {
    if (!state) return;
    const t = now();
    $('clock').textContent = new Date(t).toISOString().slice(11, 19) + ' UTC';
    document.querySelectorAll('.countdown').forEach((c) => {
      const at = Date.parse(c.dataset.expires);
      if (Number.isNaN(at)) {
        c.textContent = 'no expiry';
      } else if (at > t) {
        c.textContent = 'expires in ' + clock(at - t);
        c.classList.remove('late');
      } else {
        c.textContent = 'expired: the next sweep removes it';
        c.classList.add('late');
      }
    });
  }

  $('composer').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const text = $('text').value.trim() || $('text').placeholder;
    const answer = await post('/playground/command', { user: selected(), text });
    if (answer.status === 200) $('text').value = '';
    refresh();
  });
  $('user').addEventListener('change', () => {
    if (!state) return;
    draw();
    drawModal();
    if (channel === HOME && homeFor !== selected()) openHome();
  });
  $('modal-form').addEventListener('submit', (ev) => { ev.preventDefault(); submitModal(); });
  $('modal-close').addEventListener('click', closeModal);
  $('modal-x').addEventListener('click', closeModal);
  $('advance').addEventListener('click', async () => {
    $('advance').disabled = true;
    const done = await post('/playground/advance', { minutes: 10 });
    $('advance').disabled = false;
    if (done.now) {
      const parts = [['expired', done.expired], ['warned', done.warned], ['lapsed', done.lapsed], ['removed by the reconciler', done.removed]]
        .filter(([, n]) => n).map(([w, n]) => n + ' ' + w);
      toast('+10 min' + (parts.length ? ': ' + parts.join(', ') : ': nothing was due'));
    }
    refresh();
  });

  refresh();
  setInterval(refresh, 1000);
  setInterval(tick, 250);
})();
