"""Reader study: a blinded web app where readers label real and synthetic images, and its statistics."""
