// The seed's backend ("How we fine-tuned HAProxy to achieve 2,000,000 concurrent SSL
// connections"), kept faithful so that throng pong is measured against what the story ran.
// Changes, all outside the request path: the statsd client is gone (no statsd server here; the
// story's counter was one UDP packet per request), the per-request console.log goes to stdout as
// before (the bench sends it to /dev/null), and SIGUSR2 runs the garbage collector when node is
// started with --expose-gc, so the bench can read memory before and after a collection.
var http = require('http');

var argv = process.argv;
var port = argv[2];

function randomIntInc(low, high) {
    return Math.floor(Math.random() * (high - low + 1) + low);
}

function sendResponse(res, times, old_sleep) {
    res.write('pong');
    if (times == 0) {
        res.end();
    } else {
        sleep = randomIntInc(0, old_sleep + 1);
        setTimeout(sendResponse, sleep, res, times - 1, old_sleep);
    }
}

var server = http.createServer(function (req, res) {
    headers = req.headers;
    old_sleep = parseInt(headers["sleep"]);
    times = headers["times"] || 0;
    sleep = randomIntInc(0, old_sleep + 1);
    console.log(sleep);
    res.writeHead(200);
    setTimeout(sendResponse, sleep, res, times, old_sleep);
});

server.timeout = 3600000;
server.listen(port);

process.on('SIGUSR2', function () {
    if (global.gc) {
        global.gc();
    }
});
