# Installs cronplus the way a distribution lays it out:
#   make install [PREFIX=/usr/local] [DESTDIR=]    then: systemctl daemon-reload; systemctl enable --now cronplus
#   make uninstall [PREFIX=/usr/local] [DESTDIR=]  (keeps /etc/cronplus.yaml and the history)
# The package and its dependencies go into a virtual environment of their own in
# $(PREFIX)/lib/cronplus, so nothing is installed into the system's Python.

PREFIX ?= /usr/local
DESTDIR ?=
SYSCONFDIR ?= /etc
PYTHON ?= python3
EXTRAS ?= web  # the dashboard; EXTRAS=web,postgres adds cluster mode; EXTRAS= neither

BINDIR = $(PREFIX)/bin
LIBDIR = $(PREFIX)/lib/cronplus
MANDIR = $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
USERUNITDIR ?= $(PREFIX)/lib/systemd/user
BASHCOMPDIR = $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR = $(PREFIX)/share/zsh/vendor-completions

.PHONY: install uninstall

install:
	$(PYTHON) -m venv --clear $(DESTDIR)$(LIBDIR)
	$(DESTDIR)$(LIBDIR)/bin/python -m pip install --quiet --disable-pip-version-check ".$(if $(strip $(EXTRAS)),[$(strip $(EXTRAS))])"
	# scripts must name the interpreter where it will live, not where it was staged
	test -z "$(DESTDIR)" || sed -i '1s|^#!$(DESTDIR)|#!|' $(DESTDIR)$(LIBDIR)/bin/cronplus $(DESTDIR)$(LIBDIR)/bin/cronplusctl
	install -d $(DESTDIR)$(BINDIR)
	ln -sf $(LIBDIR)/bin/cronplus $(DESTDIR)$(BINDIR)/cronplus
	ln -sf $(LIBDIR)/bin/cronplusctl $(DESTDIR)$(BINDIR)/cronplusctl
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(USERUNITDIR)
	sed 's|/usr/bin/|$(BINDIR)/|g' systemd/cronplus.service > $(DESTDIR)$(UNITDIR)/cronplus.service
	sed 's|/usr/bin/|$(BINDIR)/|g' systemd/user/cronplus.service > $(DESTDIR)$(USERUNITDIR)/cronplus.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/cronplus.service $(DESTDIR)$(USERUNITDIR)/cronplus.service
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -m 0644 man/cronplusctl.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 man/cronplus.yaml.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 man/cronplus.8 $(DESTDIR)$(MANDIR)/man8/
	install -d $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR)
	install -m 0644 completion/cronplusctl.bash $(DESTDIR)$(BASHCOMPDIR)/cronplusctl
	install -m 0644 completion/_cronplusctl $(DESTDIR)$(ZSHCOMPDIR)/_cronplusctl
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/cronplus.d
	test -e $(DESTDIR)$(SYSCONFDIR)/cronplus.yaml || \
		install -m 0644 etc/cronplus.yaml $(DESTDIR)$(SYSCONFDIR)/cronplus.yaml

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/cronplus $(DESTDIR)$(BINDIR)/cronplusctl
	rm -rf $(DESTDIR)$(LIBDIR)
	rm -f $(DESTDIR)$(UNITDIR)/cronplus.service $(DESTDIR)$(USERUNITDIR)/cronplus.service
	rm -f $(DESTDIR)$(MANDIR)/man1/cronplusctl.1 $(DESTDIR)$(MANDIR)/man5/cronplus.yaml.5
	rm -f $(DESTDIR)$(MANDIR)/man8/cronplus.8
	rm -f $(DESTDIR)$(BASHCOMPDIR)/cronplusctl $(DESTDIR)$(ZSHCOMPDIR)/_cronplusctl
