"""HTTP routes of the study app, one router per role: auth (login, invitations), reader, admin."""
