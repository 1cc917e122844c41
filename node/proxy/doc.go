// Package proxy is the node's caching forward HTTP proxy (--proxy-cache): vendor
// agents that take an http_proxy fetch through any node of the site, and each
// object crosses the WAN about once per site.
//
// # Object
//
// One cached GET response, keyed by its absolute URL. Its body is cut into
// content-defined chunks (package chunk) kept in the node's chunk store; a small
// record in the store's meta area lists them with the stored response headers
// and the validators and freshness the HTTP caching rules give it.
//
// # Owner
//
// The site member that fetches an object from upstream, chosen by rendezvous
// hash of its URL over the live members (mesh.ObjectOwner). Other members ask
// the owner over the mesh's object protocol and stream its answer to their
// client; only the owner stores the object.
//
// # Freshness
//
// An object is fresh for s-maxage, max-age, Expires - Date or, with only a
// Last-Modified, a tenth of its age (at most a day). A stale object, or one
// marked no-cache, is revalidated upstream with If-None-Match or
// If-Modified-Since: a 304 refreshes the record without moving the body.
// Responses to requests with Authorization, and no-store or private responses,
// are passed through and never stored.
package proxy
