# Sourced by scripts/run and scripts/test: OCR of scanned PDFs and images needs Debian's
# tesseract-ocr with English and German language data. Installed when running as root
# (as on CI and fresh machines), else a warning says what to install.
tesseract_ready() {
    command -v tesseract >/dev/null 2>&1 || return 1
    local langs
    langs="$(tesseract --list-langs 2>/dev/null)" || return 1
    grep -qx eng <<<"$langs" && grep -qx deu <<<"$langs"
}

if ! tesseract_ready; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing tesseract (OCR) with English and German language data"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            tesseract-ocr tesseract-ocr-eng tesseract-ocr-deu >/dev/null
    else
        echo "warning: tesseract (eng, deu) is missing; scanned PDFs and images cannot be" \
            "OCR'd. Install it: apt-get install tesseract-ocr tesseract-ocr-eng" \
            "tesseract-ocr-deu" >&2
    fi
fi
