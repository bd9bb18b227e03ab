// Package containers is dk8s's one door to the Docker Engine: Engine, a
// narrow interface holding only the calls dk8s makes, in dk8s's own types,
// and Docker, its implementation over the Engine API client
// (github.com/moby/moby/client), which negotiates the API version down to
// the daemon's (1.40 and up, so Debian's Docker 20.10 works).
//
// Keeping the Engine client's types out of every other package lets that
// 0.x client change under dk8s without touching anything but this package,
// and lets tests of other packages fake one method at a time.
package containers
