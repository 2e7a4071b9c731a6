"""HEAD answers wherever GET does, with GET's status and headers and no body (RFC 9110).

Falcon routes HEAD only to resources with an `on_head`; this middleware runs the GET
responder instead and puts the method back before Falcon writes the response, so Falcon
drops the body and keeps its Content-Length. New routes get HEAD without doing anything.
"""

import falcon


class HeadAsGet:
    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.method == "HEAD":
            req.method = "GET"
            req.context.head = True

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, succeeded: bool
    ) -> None:
        if req.context.get("head"):
            req.method = "HEAD"
