# One image for api, workers, migrate and ui. CUDA wheels come from the torch index of the host's CUDA version.
FROM python:3.11-slim
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu124
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HOME=/data/hf
WORKDIR /app
COPY pyproject.toml README.md ./
COPY aicd ./aicd
COPY backend ./backend
COPY worker ./worker
COPY ui ./ui
COPY migrations ./migrations
COPY alembic.ini ./
RUN pip install --extra-index-url ${TORCH_INDEX} .
EXPOSE 8000 8501
CMD ["uvicorn", "backend.main:app", "--host", "0.0.0.0", "--port", "8000"]
