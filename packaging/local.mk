# Distribution packaging: shipped in the release tarball, so that Debian
# and RPM packages build from it; nothing here is built or installed by
# `make install` (the packages install the unit, the tmpfiles.d and
# sysusers.d entries and the default configuration themselves).
EXTRA_DIST += \
	packaging/surplus.conf \
	packaging/build-deb \
	packaging/systemd/surplusd.service \
	packaging/systemd/surplus.tmpfiles \
	packaging/systemd/surplus.sysusers \
	packaging/systemd/surplusd.service.d/cuda.conf \
	packaging/rpm/surplus.spec \
	packaging/debian/changelog \
	packaging/debian/clean \
	packaging/debian/control \
	packaging/debian/copyright \
	packaging/debian/rules \
	packaging/debian/source/format \
	packaging/debian/surplus.install \
	packaging/debian/surplus.lintian-overrides \
	packaging/debian/surplus.postrm \
	packaging/debian/surplus-plugin-cuda.install \
	packaging/debian/surplus-plugin-cuda.lintian-overrides \
	packaging/debian/surplus-plugin-cuda.postinst \
	packaging/debian/surplus-plugin-cuda.postrm \
	packaging/debian/surplus-plugin-dev.install \
	packaging/debian/surplus-plugin-dev.lintian-overrides \
	tests/install/deb.sh \
	tests/install/dist.sh
