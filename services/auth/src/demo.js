// The /demo page's script (served as a file: the page's CSP allows no inline scripts).
var userToken = '';
function readToken() { userToken = document.getElementById('token').value.trim(); return userToken; }

// The same settings as the snippet above; used once the widget is loaded.
window.zESettings = {
  webWidget: {
    authenticate: {
      chat: {
        jwtFn: function(callback) {
          fetch('/webhook/chat-token', {headers: {Authorization: 'Bearer ' + userToken}})
            .then(r => r.json())
            .then(d => callback(d.jwt));
        }
      }
    }
  }
};

function b64url(part) {
  var s = part.replace(/-/g, '+').replace(/_/g, '/');
  while (s.length % 4) { s += '='; }
  return decodeURIComponent(Array.prototype.map.call(atob(s), function (c) {
    return '%' + ('00' + c.charCodeAt(0).toString(16)).slice(-2);
  }).join(''));
}

document.getElementById('fetch').addEventListener('click', function () {
  var out = document.getElementById('out');
  out.className = '';
  readToken();
  fetch('/webhook/chat-token', {headers: {Authorization: 'Bearer ' + userToken}})
    .then(function (r) { return r.json().then(function (d) { return {status: r.status, body: d}; }); })
    .then(function (res) {
      if (!res.body.jwt) {
        out.className = 'err';
        out.textContent = res.status + ' ' + JSON.stringify(res.body, null, 2);
        return;
      }
      var parts = res.body.jwt.split('.');
      var header = JSON.parse(b64url(parts[0]));
      var claims = JSON.parse(b64url(parts[1]));
      var lines = 'header: ' + JSON.stringify(header, null, 2) + '\nclaims: ' + JSON.stringify(claims, null, 2);
      if (claims.iat && claims.exp) {
        lines += '\n\nissued ' + new Date(claims.iat * 1000).toISOString() +
                 ', expires ' + new Date(claims.exp * 1000).toISOString() +
                 ' (' + (claims.exp - claims.iat) + ' s)';
      }
      out.textContent = lines;
    })
    .catch(function (e) { out.className = 'err'; out.textContent = String(e); });
});

// The widget script is only loaded on request, never automatically.
document.getElementById('widget').addEventListener('click', function () {
  readToken();
  var key = document.getElementById('key').value.trim();
  if (!key || document.getElementById('ze-snippet')) { return; }
  var s = document.createElement('script');
  s.id = 'ze-snippet';
  s.src = 'https://static.zdassets.com/ekr/snippet.js?key=' + encodeURIComponent(key);
  document.body.appendChild(s);
});
