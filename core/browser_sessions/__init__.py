"""Server-side browser sessions: the cookie names a record; the record says who signed in, until when."""
