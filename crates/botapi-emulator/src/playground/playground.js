// The playground: talk to a bot of the emulator as a user, in a chat view like Telegram's. A client of the control
// API: the chat's view is long-polled (`/control/bots/{bot}/chats/{chat}/view?after=&wait_ms=`), so what the bot
// sends, edits and deletes shows as it happens. Bot text is never parsed as HTML: every node is built with
// createElement and textContent, formatting from the message's entities.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const els = {
    bot: $('bot'),
    reloadBots: $('reload-bots'),
    userId: $('user-id'),
    userName: $('user-name'),
    chat: $('chat'),
    empty: $('empty'),
    messages: $('messages'),
    status: $('status'),
    replyKeyboard: $('reply-keyboard'),
    composer: $('composer'),
    text: $('text'),
    file: $('file'),
    attachment: $('attachment'),
    attachmentName: $('attachment-name'),
    attachmentRemove: $('attachment-remove'),
  };
  const POLL_WAIT_MS = 25000;
  const state = {
    bot: null, // the bot's id, as a string
    seq: null, // the `seq` of the view shown; null before the first
    kick: false, // the next view is wanted at once (after an action of ours)
    signatures: new WeakMap(), // message node -> the JSON it was drawn from
  };

  // ---- HTTP ----

  async function api(path, options = {}) {
    const response = await fetch(path, options);
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const reason = body && typeof body.error === 'string' ? body.error : `${response.status} ${response.statusText}`;
      throw new Error(reason);
    }
    return body;
  }

  function postJSON(path, body) {
    return api(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  }

  const botPath = (rest) => `/control/bots/${encodeURIComponent(state.bot)}${rest}`;

  // ---- who talks to whom ----

  function userId() {
    const id = Number(els.userId.value);
    return Number.isSafeInteger(id) && id > 0 ? id : null;
  }

  function user() {
    const id = userId();
    if (id === null) throw new Error('The user id must be a positive whole number.');
    return { id, first_name: els.userName.value.trim() || `User ${id}` };
  }

  const chatKey = () => `${state.bot}/${userId()}`;

  function remember() {
    const query = new URLSearchParams();
    if (state.bot) query.set('bot', state.bot);
    query.set('user', els.userId.value);
    query.set('name', els.userName.value);
    history.replaceState(null, '', `${location.pathname}?${query}`);
  }

  function switchChat() {
    state.bot = els.bot.value || null;
    state.seq = null;
    els.messages.replaceChildren();
    renderReplyKeyboard(null);
    els.empty.hidden = false;
    remember();
    refresh();
  }

  async function loadBots() {
    let bots;
    try {
      bots = await api('/control/bots');
    } catch (error) {
      say(`Could not list the bots: ${error.message}`, 'error');
      setTimeout(loadBots, 2000);
      return;
    }
    const wanted = state.bot || new URLSearchParams(location.search).get('bot');
    const options = bots.map((bot) => {
      const label = bot.username ? `${bot.first_name} (@${bot.username})` : bot.first_name;
      const option = new Option(label, String(bot.id));
      option.dataset.username = bot.username || '';
      return option;
    });
    if (options.length === 0) {
      const none = new Option('No bots registered yet', '');
      none.disabled = true;
      els.bot.replaceChildren(none);
      say('No bot is registered with the emulator yet; the list reloads by itself.');
      setTimeout(loadBots, 2000);
      return;
    }
    els.bot.replaceChildren(...options);
    const match = options.find((o) => o.value === wanted || (wanted && o.dataset.username.toLowerCase() === wanted.replace(/^@/, '').toLowerCase()));
    els.bot.value = (match || options[0]).value;
    if (els.bot.value !== state.bot) switchChat();
  }

  // ---- the view, long-polled ----

  let aborter = null;
  let wake = null;

  // Asks for a fresh view now: ends the waiting request (or the pause after an error).
  function refresh() {
    state.kick = true;
    if (aborter) aborter.abort();
    if (wake) wake();
  }

  function pause(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    }).finally(() => {
      wake = null;
    });
  }

  async function pollLoop() {
    for (;;) {
      const id = userId();
      if (!state.bot || id === null) {
        await pause(60000);
        continue;
      }
      const key = chatKey();
      let query = '';
      if (state.seq !== null) query = `?after=${state.seq}&wait_ms=${state.kick ? 0 : POLL_WAIT_MS}`;
      state.kick = false;
      aborter = new AbortController();
      try {
        const view = await api(botPath(`/chats/${id}/view${query}`), { signal: aborter.signal });
        if (key !== chatKey()) continue; // the bot or the user changed meanwhile
        render(view);
        state.seq = view.seq;
        if (els.status.classList.contains('lost')) say('');
      } catch (error) {
        if (error.name === 'AbortError') continue;
        say(`Lost the emulator (${error.message}); trying again.`, 'error lost');
        await pause(2000);
      } finally {
        aborter = null;
      }
    }
  }

  // ---- drawing ----

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function say(text, kind = '') {
    els.status.className = `status ${kind}`.trim();
    els.status.textContent = text;
  }

  function render(view) {
    const chat = els.chat;
    const first = els.messages.children.length === 0;
    const atBottom = chat.scrollHeight - chat.scrollTop - chat.clientHeight < 80;
    const focused = document.activeElement;
    const existing = new Map([...els.messages.children].map((node) => [node.dataset.id, node]));
    let lostFocus = false;
    let previous = null;
    for (const message of view.messages) {
      const id = String(message.message_id);
      const signature = JSON.stringify(message);
      let node = existing.get(id);
      existing.delete(id);
      if (!node || state.signatures.get(node) !== signature) {
        const drawn = messageNode(message);
        state.signatures.set(drawn, signature);
        if (node) {
          if (node.contains(focused)) lostFocus = true;
          drawn.classList.add('changed');
          node.replaceWith(drawn);
        }
        node = drawn;
      }
      const next = previous ? previous.nextSibling : els.messages.firstChild;
      if (node !== next) els.messages.insertBefore(node, next);
      previous = node;
    }
    for (const stale of existing.values()) {
      if (stale.contains(focused)) lostFocus = true;
      stale.remove();
    }
    // A button that went away with its message leaves the focus where typing goes on.
    if (lostFocus) els.text.focus();
    els.empty.hidden = view.messages.length > 0;
    renderReplyKeyboard(view.reply_keyboard);
    const answer = view.answers.filter((a) => a.text).pop();
    if (answer) say(answer.text, answer.show_alert ? 'alert' : '');
    if (first || atBottom) chat.scrollTop = chat.scrollHeight;
  }

  function messageNode(message) {
    const who = message.from_bot ? 'from-bot' : 'from-user';
    const li = el('li', `message ${who}${message.deleted ? ' deleted' : ''}`);
    li.dataset.id = String(message.message_id);
    const bubble = el('div', 'bubble');
    bubble.append(el('p', 'sender', message.sender));
    if (message.reply_to) {
      const quote = el('blockquote', 'reply-to');
      quote.append(el('strong', null, message.reply_to.sender), el('span', null, message.reply_to.text));
      bubble.append(quote);
    }
    if (message.media) bubble.append(mediaNode(message.media));
    if (message.poll) bubble.append(pollNode(message.poll));
    if (message.text) {
      const text = el('div', 'text');
      formatted(text, message.text, message.entities);
      bubble.append(text);
    }
    const meta = el('p', 'meta');
    const date = new Date(message.date * 1000);
    const time = el('time', null, date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
    time.dateTime = date.toISOString();
    meta.append(time);
    if (message.edited) meta.append(el('span', 'edited', 'edited'));
    if (message.deleted) meta.append(el('span', 'gone', 'deleted'));
    bubble.append(meta);
    li.append(bubble);
    if (message.inline_keyboard && !message.deleted) li.append(inlineKeyboard(message));
    return li;
  }

  // The text with its entities: nested elements for nested entities (Telegram's entities nest, never cross).
  function formatted(parent, text, entities) {
    const list = (entities || [])
      .filter((e) => Number.isInteger(e.offset) && Number.isInteger(e.length) && e.length > 0)
      .map((e) => ({ ...e, end: e.offset + e.length }))
      .sort((a, b) => a.offset - b.offset || b.length - a.length);
    build(parent, text, 0, text.length, list);
  }

  function build(parent, text, start, end, list) {
    let at = start;
    let i = 0;
    while (i < list.length) {
      const entity = list[i];
      const from = Math.max(entity.offset, at);
      const to = Math.min(entity.end, end);
      const inner = [];
      let j = i + 1;
      while (j < list.length && list[j].offset < to) inner.push(list[j++]);
      i = j;
      if (to <= from) continue;
      if (from > at) parent.append(text.slice(at, from));
      const node = entityNode(entity, text.slice(from, to));
      build(node.querySelector('code') || node, text, from, to, inner);
      parent.append(node);
      at = to;
    }
    if (at < end) parent.append(text.slice(at, end));
  }

  // A URL safe to open: http, https or mailto only (never javascript:).
  function safeUrl(raw, base) {
    try {
      const url = new URL(raw, base);
      return ['http:', 'https:', 'mailto:'].includes(url.protocol) ? url.href : null;
    } catch (_) {
      return null;
    }
  }

  function link(url) {
    if (!url) return el('span', 'entity-link');
    const a = el('a');
    a.href = url;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    return a;
  }

  function entityNode(entity, covered) {
    switch (entity.type) {
      case 'bold':
        return el('strong');
      case 'italic':
        return el('em');
      case 'underline':
        return el('u');
      case 'strikethrough':
        return el('s');
      case 'code':
        return el('code');
      case 'pre': {
        const pre = el('pre');
        const code = el('code');
        if (entity.language) code.dataset.language = entity.language;
        pre.append(code);
        return pre;
      }
      case 'blockquote':
      case 'expandable_blockquote':
        return el('blockquote');
      case 'spoiler': {
        const span = el('span', 'spoiler');
        span.tabIndex = 0;
        span.setAttribute('role', 'button');
        span.setAttribute('aria-label', 'Spoiler: press to reveal');
        const reveal = () => {
          span.classList.add('revealed');
          span.removeAttribute('role');
          span.removeAttribute('aria-label');
          span.removeAttribute('tabindex');
        };
        span.addEventListener('click', reveal);
        span.addEventListener('keydown', (event) => {
          if (event.key === 'Enter' || event.key === ' ') {
            event.preventDefault();
            reveal();
          }
        });
        return span;
      }
      case 'text_link':
        return link(safeUrl(entity.url));
      case 'url':
        return link(safeUrl(/^[a-z][a-z0-9+.-]*:/i.test(covered) ? covered : `http://${covered}`));
      case 'email':
        return link(safeUrl(`mailto:${covered}`));
      case 'bot_command': {
        // As in Telegram, a command in the bot's text sends it.
        const button = el('button', 'command');
        button.type = 'button';
        button.title = `Send ${covered}`;
        button.addEventListener('click', () => act(() => sendText(covered)));
        return button;
      }
      default:
        return el('span', /^[a-z_]+$/.test(entity.type) ? `entity-${entity.type}` : null);
    }
  }

  // The badge of a file: its extension, as Telegram shows it, or its kind.
  function badge(media) {
    const extension = /\.([A-Za-z0-9]{1,5})$/.exec(media.file_name || '');
    if (extension) return extension[1];
    const kinds = { document: 'file', audio: 'audio', voice: 'voice', video: 'video', video_note: 'video', animation: 'gif', sticker: 'sticker', photo: 'photo' };
    return kinds[media.kind] || 'file';
  }

  function humanSize(bytes) {
    if (typeof bytes !== 'number') return '';
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  }

  // Only the emulator's own file endpoint is ever a source or a link.
  const fileUrl = (media) => (typeof media.content === 'string' && media.content.startsWith('/control/files/') ? media.content : null);

  function mediaNode(media) {
    const figure = el('figure', `media media-${media.kind}`);
    const url = fileUrl(media);
    const image = media.kind === 'photo' || (media.kind === 'sticker' && !/webm|tgsticker/.test(media.mime_type || ''));
    if (url && image) {
      const img = el('img');
      img.src = url;
      img.alt = media.kind === 'photo' ? 'Photo' : `Sticker ${media.file_name || ''}`.trim();
      if (media.width && media.height) {
        img.width = media.width;
        img.height = media.height;
      }
      figure.append(img);
      return figure;
    }
    const line = el('p', 'file');
    const icon = el('span', 'file-icon', badge(media));
    icon.setAttribute('aria-hidden', 'true');
    line.append(icon);
    const name = media.file_name || media.kind.replace('_', ' ');
    const label = url ? el('a', 'file-name', name) : el('span', 'file-name', name);
    if (url) {
      label.href = url;
      label.download = media.file_name || '';
    }
    line.append(label);
    const size = humanSize(media.file_size);
    if (size) line.append(el('span', 'file-size', size));
    figure.append(line);
    return figure;
  }

  function pollNode(poll) {
    const box = el('div', 'poll');
    box.append(el('h3', null, `Poll: ${poll.question}`));
    const options = el('ol');
    for (const option of poll.options || []) {
      options.append(el('li', null, `${option.text} — ${option.voter_count}`));
    }
    box.append(options);
    if (poll.is_closed) box.append(el('p', 'meta', 'closed'));
    return box;
  }

  function inlineKeyboard(message) {
    const box = el('div', 'keyboard');
    box.setAttribute('role', 'group');
    box.setAttribute('aria-label', 'Buttons of the message');
    for (const row of message.inline_keyboard) {
      if (!Array.isArray(row)) continue;
      const line = el('div', 'row');
      for (const button of row) line.append(inlineButton(message, button));
      box.append(line);
    }
    return box;
  }

  function inlineButton(message, button) {
    const text = String(button.text || '');
    if (typeof button.callback_data === 'string') {
      const node = el('button', null, text);
      node.type = 'button';
      node.addEventListener('click', () => act(() => click(message.message_id, button.callback_data)));
      return node;
    }
    if (typeof button.url === 'string') {
      const url = safeUrl(button.url);
      if (url) {
        const a = link(url);
        a.className = 'button';
        a.textContent = `${text} ↗`;
        return a;
      }
    }
    if (button.copy_text && typeof button.copy_text.text === 'string') {
      const node = el('button', null, text);
      node.type = 'button';
      node.addEventListener('click', () => act(async () => {
        await navigator.clipboard.writeText(button.copy_text.text);
        say('Copied.');
      }, false));
      return node;
    }
    const node = el('button', null, text);
    node.type = 'button';
    node.disabled = true;
    node.title = 'The playground cannot press this kind of button';
    return node;
  }

  function renderReplyKeyboard(keyboard) {
    if (!keyboard || keyboard.rows.length === 0) {
      els.replyKeyboard.hidden = true;
      els.replyKeyboard.replaceChildren();
      els.text.placeholder = 'Message';
      return;
    }
    const rows = keyboard.rows.map((row) => {
      const line = el('div', 'row');
      for (const text of row) {
        const button = el('button', null, text);
        button.type = 'button';
        button.addEventListener('click', () => act(() => sendText(text)));
        line.append(button);
      }
      return line;
    });
    const signature = JSON.stringify(keyboard);
    if (els.replyKeyboard.dataset.signature !== signature) {
      els.replyKeyboard.replaceChildren(...rows);
      els.replyKeyboard.dataset.signature = signature;
    }
    els.replyKeyboard.hidden = false;
    els.text.placeholder = keyboard.placeholder || 'Message';
  }

  // ---- what the user does ----

  // Runs an action of the user's; shows its error; then fetches the view at once.
  async function act(action, fresh = true) {
    if (!state.bot) {
      say('Pick a bot first.', 'error');
      return false;
    }
    try {
      await action();
      return true;
    } catch (error) {
      say(error.message, 'error');
      return false;
    } finally {
      if (fresh) refresh();
    }
  }

  function sendText(text) {
    say('');
    return postJSON(botPath('/messages'), { from: user(), text });
  }

  function click(messageId, data) {
    say('');
    return postJSON(botPath('/callbacks'), { from: user(), message_id: messageId, data });
  }

  async function sendFile(file, caption) {
    const from = user();
    // The file endpoint takes the user's id only: name them first.
    await postJSON('/control/users', from);
    const kind = /^image\/(png|jpeg|gif)$/.test(file.type) ? 'photo' : 'document';
    const query = new URLSearchParams({ from: String(from.id), kind });
    if (kind === 'document') query.set('file_name', file.name);
    if (file.type) query.set('mime_type', file.type);
    if (caption) query.set('caption', caption);
    say(`Sending ${file.name}…`);
    await api(botPath(`/files?${query}`), { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: file });
    say('');
  }

  function showAttachment() {
    const file = els.file.files[0];
    els.attachment.hidden = !file;
    els.attachmentName.textContent = file ? `${file.name} (${humanSize(file.size)}): the message becomes its caption` : '';
  }

  els.composer.addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = els.text.value;
    const file = els.file.files[0];
    if (!file && text.trim() === '') return;
    const sent = await act(() => (file ? sendFile(file, text) : sendText(text)));
    if (sent) {
      els.text.value = '';
      els.file.value = '';
      showAttachment();
    }
    els.text.focus();
  });
  els.file.addEventListener('change', showAttachment);
  els.attachmentRemove.addEventListener('click', () => {
    els.file.value = '';
    showAttachment();
    els.text.focus();
  });
  els.bot.addEventListener('change', switchChat);
  els.reloadBots.addEventListener('click', loadBots);
  els.userId.addEventListener('change', switchChat);
  els.userName.addEventListener('change', remember);

  const params = new URLSearchParams(location.search);
  if (params.get('user')) els.userId.value = params.get('user');
  if (params.get('name')) els.userName.value = params.get('name');
  loadBots();
  pollLoop();
})();
