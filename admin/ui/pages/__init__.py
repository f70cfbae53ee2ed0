"""One module per page of the admin UI; each is a class whose methods are the page's handlers."""
